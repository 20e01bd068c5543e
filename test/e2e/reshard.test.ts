// The Re-shard view in a real browser against the real backend: the sample's two DDP rank files
// (identical copies) planned and merged into one verified file; cpu.pt planned as a DCP folder of
// two ranks, its layout drawn piece by piece, then written and verified.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';
import { browserSkipReason, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();

describe('re-shard view', { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = tempDir('reshard');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ height: 1000 });

  it('plans and merges the two identical DDP ranks into one verified file', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Re-shard');
    const input = page.getByTestId('reshard-input');
    assert.equal(await input.first().inputValue(), join(SAMPLE_DIR, 'dp.pt'), 'starts from the open checkpoint');
    await input.first().fill(join(SAMPLE_DIR, 'ddp'));
    assert.equal(await page.getByRole('radio', { name: 'single' }).isChecked(), true);
    const out = join(dir, 'merged.pt');
    await page.getByTestId('reshard-output').fill(out);
    assert.equal(await page.getByRole('button', { name: 'Run', exact: true }).isDisabled(), true, 'Run waits for a plan');

    await page.getByRole('button', { name: 'Plan', exact: true }).click();
    const inLayout = page.getByTestId('input-layout');
    await inLayout.waitFor();
    assert.equal(await page.getByTestId('input-layout-title').innerText(), '2 rank files (data-parallel copies)');
    assert.equal(await page.getByTestId('output-layout-title').innerText(), 'one torch file');
    assert.equal(await inLayout.getByTestId('layout-row').count(), 16);
    // every tensor whole in rank 0 and again, as a replica, in rank 1
    assert.equal(await inLayout.locator('rect.piece').count(), 32);
    assert.equal(await inLayout.locator('rect.piece.replica').count(), 16);
    assert.equal(await page.getByTestId('output-layout').locator('rect.piece').count(), 16);
    // the planned output names its size (it said 0 B): the tensor data it will hold
    const outHead = await page.getByTestId('output-layout').locator('.line.head').innerText();
    assert.doesNotMatch(outHead, /\b0 B\b/);
    assert.match(outHead, /15\.3 KiB/);
    assert.match(await page.getByTestId('plan-warnings').innerText(), /2 rank files of a data-parallel run: merged when every rank holds the same tensors/);
    assert.ok(!existsSync(out), 'a plan writes nothing');

    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const result = page.getByTestId('reshard-result');
    await result.waitFor({ timeout: 60_000 });
    assert.equal(await result.getAttribute('data-verified'), 'true');
    assert.equal(await result.getByTestId('reshard-verified').innerText(), 'Written and verified');
    const rows = result.getByTestId('output-check');
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().innerText(), /merged\.pt[\s\S]*16[\s\S]*✓ read back equal/);

    const ck = openCheckpoint(out);
    try {
      const keys = ck.report.tensors.map((t) => String(t.path[t.path.length - 1]));
      assert.equal(keys.length, 16);
      assert.ok(
        keys.every((k) => k.startsWith('module.')),
        'keys kept as they were (no preset)',
      );
    } finally {
      ck.close();
    }
    assert.deepEqual(app.browser.problems, []);
  });

  it('draws cpu.pt split over a DCP folder of two ranks, then writes and verifies it', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByTestId('reshard-input').first().fill(join(SAMPLE_DIR, 'cpu.pt'));
    await page.getByRole('radio', { name: 'dcp:N' }).check();
    await page.getByRole('spinbutton', { name: 'Ranks' }).fill('2');
    const out = join(dir, 'cpu-dcp');
    await page.getByTestId('reshard-output').fill(out);
    await page.getByText('The settings changed: plan again before running.').waitFor();
    await page.getByRole('button', { name: 'Plan', exact: true }).click();

    const outLayout = page.getByTestId('output-layout');
    await page.getByTestId('output-layout-title').filter({ hasText: 'DCP folder, 2 data files' }).waitFor();
    assert.equal(await page.getByTestId('input-layout').locator('rect.piece').count(), 16);
    // 16 tensors: 14 split along dim 0 into two halves, one in each data file; the two
    // num_batches_tracked scalars whole in one
    assert.equal(await outLayout.locator('rect.piece').count(), 14 * 2 + 2);
    assert.equal(await outLayout.getByTestId('layout-row').filter({ hasText: 'num_batches_tracked' }).locator('rect.piece').count(), 2);
    const first = outLayout.getByTestId('layout-row').first();
    const halves = await first
      .locator('rect.piece')
      .evaluateAll((rs) => rs.map((r) => ({ x: Number(r.getAttribute('x')), w: Number(r.getAttribute('width')) })));
    assert.equal(halves.length, 2);
    assert.ok(Math.abs(halves[0]!.w - halves[1]!.w) < 1e-6, 'two equal halves');
    assert.ok(halves[1]!.x > halves[0]!.x + halves[0]!.w, 'the second half lies in the second file, to the right');
    assert.ok((await outLayout.locator('rect.cell.meta').count()) >= 1, 'the .metadata column holds no tensor data');
    assert.match(await page.getByTestId('reshard-plan').innerText(), /dict attributes \(_metadata\) are not kept by a distributed checkpoint/);

    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const result = page.getByTestId('reshard-result');
    await result.filter({ has: page.getByText('Written and verified') }).waitFor({ timeout: 60_000 });
    assert.equal(await result.getAttribute('data-verified'), 'true');
    // the folder is one output, read back as one checkpoint
    const rows = result.getByTestId('output-check');
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute('data-verified'), 'true');
    assert.match(await rows.first().innerText(), /cpu-dcp[\s\S]*16[\s\S]*✓ read back equal/);
    assert.deepEqual(readdirSync(out).sort(), ['.metadata', '__0_0.distcp', '__1_0.distcp']);
    await screenshot(page, 'reshard');
    assert.deepEqual(app.browser.problems, []);
  });
});
