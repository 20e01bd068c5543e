// A damaged or incomplete DeepSpeed folder gives ONE line that names the missing piece: a missing
// rank file, a world-size mismatch, a truncated optimizer file, a wrong tag, a layout the reader
// does not know. The folders are built from the real corpus files (symlinks) in a temp folder.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { CheckpointError } from '../../../../main/errors.ts';
import { withTag } from '../../../../main/formats/deepspeed/locate.ts';
import { SHARED_DIR, sharedSkipReason } from '../../../helpers/shared-dir.ts';

const DS = path.join(SHARED_DIR, 'corpus', 'deepspeed');
const skip = sharedSkipReason(DS) ?? false;
const UNKNOWN = fileURLToPath(new URL('../../../fixtures/deepspeed/unknown-layout', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-ds-errors-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A checkpoint folder (latest + global_step2/) holding `files` of a corpus variant; `extra` adds files by name. */
function folder(name: string, variant: string, files: string[], extra: Record<string, string | Buffer> = {}): string {
  const dir = path.join(tmp, name);
  const tag = path.join(dir, 'global_step2');
  fs.mkdirSync(tag, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest'), 'global_step2');
  const src = path.join(DS, variant, 'checkpoint', 'global_step2');
  for (const f of files) fs.symlinkSync(path.join(src, f), path.join(tag, f));
  for (const [f, content] of Object.entries(extra)) {
    if (typeof content === 'string') fs.symlinkSync(path.join(src, content), path.join(tag, f));
    else fs.writeFileSync(path.join(tag, f), content);
  }
  return dir;
}

function error(fn: () => unknown): CheckpointError {
  try {
    const c = fn() as { close?: () => void };
    c?.close?.();
  } catch (e) {
    assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${e}`);
    assert.doesNotMatch(e.message, /\n/);
    return e;
  }
  return assert.fail('expected an error');
}

const OPT = (r: number): string => `zero_pp_rank_${r}_mp_rank_00_optim_states.pt`;
const MODEL3 = (r: number): string => `zero_pp_rank_${r}_mp_rank_00_model_states.pt`;

test('a missing optimizer rank file is named', { skip }, () => {
  const dir = folder('missing-rank', 'stage2-ws2-fp32', ['mp_rank_00_model_states.pt', OPT(0)]);
  const e = error(() => openCheckpoint(dir));
  assert.equal(e.kind, 'truncated');
  assert.match(e.message, /world size 2 needs 2 \*_optim_states\.pt files, found 1: missing zero_pp_rank_1_mp_rank_00_optim_states\.pt/);
});

test('a missing ZeRO-3 model-states rank file is named', { skip }, () => {
  const dir = folder('missing-model', 'stage3-ws2-bf16', [MODEL3(0), `bf16_${OPT(0)}`, `bf16_${OPT(1)}`]);
  assert.match(error(() => openCheckpoint(dir)).message, /missing zero_pp_rank_1_mp_rank_00_model_states\.pt/);
});

test('more rank files than partition_count says is a world-size mismatch', { skip }, () => {
  const dir = folder('extra-rank', 'stage1-ws2-fp32', ['mp_rank_00_model_states.pt', OPT(0), OPT(1)], { [OPT(2)]: OPT(1) });
  const e = error(() => openCheckpoint(dir));
  assert.match(e.message, /3 \*_optim_states\.pt files but partition_count says world size 2; remove the files of an older run \(ranks 2\)/);
});

test('a truncated optimizer file is named with what is wrong', { skip }, () => {
  const src = fs.readFileSync(path.join(DS, 'stage3-ws2-fp32', 'checkpoint', 'global_step2', OPT(1)));
  const dir = folder('truncated', 'stage3-ws2-fp32', [MODEL3(0), MODEL3(1), OPT(0)], { [OPT(1)]: src.subarray(0, src.length - 300) });
  const e = error(() => openCheckpoint(dir));
  assert.match(e.message, /zero_pp_rank_1_mp_rank_00_optim_states\.pt/);
  assert.match(e.message, /truncated/);
});

test('a wrong tag lists the tags there are; latest naming a missing folder says so', { skip }, () => {
  const ck = path.join(DS, 'stage1-ws2-bf16', 'checkpoint');
  const e = error(() => withTag(ck, 'global_step9'));
  assert.equal(e.kind, 'usage');
  assert.match(e.message, /no tag folder global_step9; its tags are global_step2/);
  const dir = folder('bad-latest', 'stage1-ws2-fp32', ['mp_rank_00_model_states.pt', OPT(0), OPT(1)]);
  fs.writeFileSync(path.join(dir, 'latest'), 'global_step7\n');
  assert.match(
    error(() => openCheckpoint(dir)).message,
    /'latest' names tag global_step7, but there is no folder global_step7; its tags are global_step2 \(choose one with --tag\)/,
  );
});

test('optimizer states without the flat fp32 partitions are an unknown layout, named', () => {
  const e = error(() => openCheckpoint(UNKNOWN));
  assert.equal(e.kind, 'not-a-checkpoint');
  assert.match(e.message, /ZeRO-2 optimizer states without single_partition_of_fp32_groups/);
});
