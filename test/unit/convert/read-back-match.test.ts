// verifyOutput matches each planned tensor with the written one at the same place while the paths
// agree, and by path from the first that differs. Checked on a real torch file against plans that
// agree with it, reorder it, or name a tensor it lacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openFormat } from '../../../main/formats/open-format.ts';
import { verifyOutput } from '../../../main/convert/read-back.ts';
import { StorageReadBack } from '../../../main/convert/storage-read-back.ts';
import { WrittenStorages } from '../../../main/convert/write-checkpoint.ts';
import { PyDict, type PyValue } from '../../../main/formats/values/python-values.ts';
import { TorchTensor } from '../../../main/formats/values/torch-values.ts';

const FILE = 'test/fixtures/torch/cpu_state_dict.pt';

async function problems(plan: (entries: [PyValue, PyValue][]) => [PyValue, PyValue][]): Promise<{ paths: string[]; problems: string[]; mismatch: string }> {
  const reading = openFormat(FILE);
  try {
    const root = reading.root as PyDict;
    const planned = new PyDict(true);
    for (const [k, v] of plan([...root.entries])) planned.set(k, v);
    // no storages written: every matched tensor is "in the wrong storage", an unmatched one "missing"
    const r = await verifyOutput(FILE, FILE, planned, new WrittenStorages(), () => 'cpu', new StorageReadBack());
    return {
      paths: r.checks.toArray().map((c) => JSON.stringify(c.path)),
      problems: r.checks.toArray().map((c) => c.problem ?? ''),
      mismatch: r.mismatch ?? '',
    };
  } finally {
    reading.close();
  }
}

test('verifyOutput: in order, reordered, and with a planned tensor the file lacks', async () => {
  const same = await problems((e) => e);
  assert.ok(same.problems.length >= 2, 'the fixture has several tensors');
  assert.ok(
    same.problems.every((p) => p.startsWith('stored in the wrong storage')),
    same.problems.join('; '),
  );
  const reversed = await problems((e) => e.slice().reverse());
  assert.ok(
    reversed.problems.every((p) => p.startsWith('stored in the wrong storage')),
    reversed.problems.join('; '),
  );
  const renamed = await problems((e) => e.map(([k, v], i) => [i === 1 ? `${String(k)}.renamed` : k, v]));
  assert.deepEqual(
    renamed.problems.map((p) => (p.startsWith('stored in the wrong storage') ? 'matched' : p)),
    renamed.problems.map((_, i) => (i === 1 ? 'missing from the written file' : 'matched')),
  );
  assert.match(renamed.mismatch, /stored in the wrong storage/);
  const dropped = await problems((e) => e.slice(1));
  assert.ok(
    dropped.problems.every((p) => p.startsWith('stored in the wrong storage')),
    'the rest still match by path',
  );
});

test('verifyOutput: a planned shape, stride or device the file does not have is a mismatch, not a pass', async () => {
  const reading = openFormat(FILE);
  try {
    const root = reading.root as PyDict;
    const [key, first] = root.entries[0]!;
    assert.ok(first instanceof TorchTensor);
    const t = first as TorchTensor;
    const variants: [string, TorchTensor, RegExp][] = [
      ['shape', new TorchTensor(t.rebuild, t.args, t.kind, t.dtype, [...t.shape, 1], [...t.stride, 1], t.storageOffset, t.storage), /shape \[/],
      ['offset', new TorchTensor(t.rebuild, t.args, t.kind, t.dtype, t.shape, t.stride, t.storageOffset + 1, t.storage), /storage offset/],
    ];
    for (const [what, planned, problem] of variants) {
      const plan = new PyDict(true);
      plan.set(key, planned);
      const r = await verifyOutput(FILE, FILE, plan, new WrittenStorages(), () => 'cpu', new StorageReadBack());
      assert.equal(r.verified, false, what);
      assert.match(r.checks.problem(0) ?? '', problem, what);
    }
    // a plan on another device: the written location differs
    const plan = new PyDict(true);
    plan.set(key, t);
    const r = await verifyOutput(FILE, FILE, plan, new WrittenStorages(), () => 'cuda:7', new StorageReadBack());
    assert.match(r.checks.problem(0) ?? '', /device cpu, planned cuda:7/);
  } finally {
    reading.close();
  }
});
