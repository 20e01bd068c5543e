// The Batch view in a real browser against the real backend: 20 checkpoints (the sample files
// copied into a folder tree, and three big ones written by torch), a dry run, Start with live
// progress, Cancel mid-way, Resume (finished files come back as skipped), the JSON report.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, makeCheckpoint, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir, torchSkipReason } from './helpers.ts';

const skip = browserSkipReason() ?? torchSkipReason();
const SMALL = ['cpu.pt', 'dp.pt', 'cuda1.pt', 'checkpoint.pth.tar'];
const LARGE = ['z-large-0.pt', 'z-large-1.pt', 'z-large-2.pt'];

describe('batch view', { skip: skip ?? false }, () => {
  let dir: string;
  let input: string;
  let output: string;
  const sources: string[] = [];
  before(() => {
    dir = tempDir('batch');
    input = join(dir, 'runs');
    output = join(dir, 'converted');
    for (const run of ['run-a', 'run-b', 'run-c', 'run-d']) {
      mkdirSync(join(input, run), { recursive: true });
      for (const f of SMALL) {
        copyFileSync(join(SAMPLE_DIR, f), join(input, run, f));
        sources.push(`${run}/${f}`);
      }
    }
    copyFileSync(join(SAMPLE_DIR, 'legacy_cpu.pt'), join(input, 'run-a', 'legacy_cpu.pt'));
    sources.push('run-a/legacy_cpu.pt');
    // Big enough (in bytes and in tensors) that converting them one at a time takes a few
    // seconds: time to cancel.
    for (const f of LARGE) {
      makeCheckpoint('large', join(input, f), '96', '10000');
      sources.push(f);
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ height: 900 });

  it('plans, runs with progress, cancels mid-way, resumes with finished files skipped, exports the report', { timeout: 180_000 }, async () => {
    const { page } = app.browser;
    assert.equal(sources.length, 20);
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Batch');
    await page.getByTestId('batch-input').fill(input);
    await page.getByTestId('batch-output').fill(output);
    await page.getByRole('spinbutton', { name: 'Parallel conversions' }).fill('1');
    assert.equal(await page.getByRole('radio', { name: 'CPU' }).isChecked(), true);

    const items = page.getByTestId('batch-item');
    const status = (s: string) => page.locator(`[data-testid="batch-item"][data-status="${s}"]`);
    const names = async (s: string): Promise<string[]> => (await status(s).locator('.src').allInnerTexts()).map((t) => t.trim()).sort();

    // Dry run: the plan, nothing written.
    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByTestId('batch-status').filter({ hasText: 'Dry run' }).waitFor();
    assert.equal(await items.count(), 20);
    assert.deepEqual(await names('pending'), [...sources].sort());
    assert.equal(existsSync(output), false);
    await screenshot(page, 'batch-plan');

    // Start, then cancel while a big file is being converted.
    await page.getByRole('button', { name: 'Start' }).click();
    await status('running').filter({ hasText: 'z-large' }).first().waitFor({ timeout: 60_000 });
    await page.getByRole('progressbar', { name: 'Overall progress' }).waitFor();
    await screenshot(page, 'batch-running');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('[data-testid="batch-overall"][data-phase="finished"]').waitFor({ timeout: 60_000 });
    await page.getByTestId('batch-status').filter({ hasText: 'Cancelled' }).waitFor();
    const doneBefore = await names('done');
    const cancelled = await names('cancelled');
    assert.ok(doneBefore.length >= 1, `done before cancel: ${doneBefore.join(', ')}`);
    assert.ok(cancelled.length >= 1, 'some files were cancelled');
    assert.ok(
      cancelled.every((n) => n.startsWith('z-large')),
      `cancelled: ${cancelled.join(', ')}`,
    );
    assert.equal(doneBefore.length + cancelled.length, 20);
    await screenshot(page, 'batch-cancelled');

    // Resume: what was finished is skipped, the rest is converted.
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('[data-testid="batch-overall"][data-phase="finished"]').waitFor({ timeout: 120_000 });
    await page
      .getByTestId('batch-status')
      .filter({ hasText: /^Finished\.$/ })
      .waitFor();
    assert.deepEqual(await names('skipped'), doneBefore);
    assert.deepEqual(await names('done'), cancelled);
    assert.equal((await status('failed').count()) + (await status('cancelled').count()) + (await status('pending').count()), 0);
    for (const s of sources) assert.ok(existsSync(join(output, s)), `${s} converted`);
    await screenshot(page, 'batch-resumed');

    // The report, as a JSON download.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export report (JSON)' }).click()]);
    const saved = join(dir, 'report.json');
    await download.saveAs(saved);
    const report = JSON.parse(readFileSync(saved, 'utf8'));
    assert.equal(report.input, input);
    assert.equal(report.summary.items.length, 20);
    assert.equal(report.summary.done, cancelled.length);
    assert.equal(report.summary.skipped, doneBefore.length);
    assert.deepEqual(report.rules.preset, { name: 'cpu' });
    assert.deepEqual(app.browser.problems, []);
  });
});
