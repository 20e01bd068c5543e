// The Verify view in a real browser against the real backend: the sample DP checkpoint converted
// to cpu by the CLI, verified against its source with the sample's ONNX graph and test set
// (filled in by themselves), PASS with torch's own accuracy, the charts, the exports.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, convertSampleToCpu, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir, waitForValue } from './helpers.ts';

const skip = browserSkipReason();
const TORCH_ACCURACY = JSON.parse(readFileSync(join(SAMPLE_DIR, 'accuracy.json'), 'utf8')) as { accuracy: number };

describe('verify view', { skip: skip ?? false }, () => {
  let dir: string;
  let converted: string;
  before(() => {
    dir = tempDir('verify');
    converted = convertSampleToCpu(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ height: 1000 });

  it('verifies the converted sample against dp.pt: PASS, the accuracy torch measured, charts and exports', { timeout: 120_000 }, async () => {
    const { page } = app.browser;
    assert.equal(TORCH_ACCURACY.accuracy.toFixed(4), '0.9889');
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Verify');

    // The open checkpoint is the source; the sample's graph and test set are found beside it.
    const source = join(SAMPLE_DIR, 'dp.pt');
    assert.equal(await page.getByTestId('verify-source').inputValue(), source);
    await waitForValue(() => page.getByTestId('verify-model').inputValue(), join(SAMPLE_DIR, 'model.onnx'));
    await waitForValue(() => page.getByTestId('verify-data').inputValue(), join(SAMPLE_DIR, 'digits-test.npz'));
    await page.getByTestId('verify-converted').fill(converted);
    await page.getByTestId('verify-device').selectOption('cpu');

    await page.getByRole('button', { name: 'Run verification' }).click();
    const verdict = page.getByTestId('verify-verdict');
    await verdict.waitFor({ timeout: 90_000 });
    assert.equal(await verdict.getAttribute('data-verdict'), 'PASS');
    assert.match(await page.getByTestId('verdict').innerText(), /PASS/);
    assert.match(await page.getByTestId('verdict-reasons').innerText(), /bit-identical to the source checkpoint on all 360 samples/);

    // Accuracy: onnxruntime's top-1 on both runs is what torch measured (356 of 360).
    const chart = page.getByTestId('accuracy-chart');
    const text = await chart.innerText();
    assert.match(text, /98\.89%/);
    assert.match(text, /Converted[\s\S]*dp-cpu\.pt[\s\S]*Source[\s\S]*dp\.pt/);
    assert.deepEqual(await chart.getByTestId('accuracy-top1').allInnerTexts(), ['98.89%', '98.89%']);
    assert.deepEqual(await chart.getByTestId('accuracy-top5').allInnerTexts(), ['100.00%', '100.00%']);

    // The confusion matrix: 10 diagonal cells, 356 right in all.
    const matrix = page.getByTestId('confusion-matrix');
    assert.equal(await matrix.locator('rect.hit').count(), 10);
    const diagonal = await matrix.locator('text.count').allTextContents();
    assert.ok(diagonal.length >= 10);
    assert.equal(await page.getByTestId('per-class').locator('tbody tr').count(), 10);
    assert.match(await page.getByTestId('provider').innerText(), /^cpu/);
    assert.match(await page.getByTestId('binding').innerText(), /2\s*bound[\s\S]*4\s*recomputed[\s\S]*0\s*unconfirmed/);
    assert.equal(await page.getByTestId('proves-nothing').count(), 0);

    // No prediction changed; the samples both runs got wrong are drawn from the test set's pixels.
    await page.getByTestId('no-mismatch').waitFor();
    const wrong = page.locator('[data-testid="example"][data-why="wrong"]');
    assert.equal(await wrong.count(), 4);
    assert.equal(
      await wrong
        .first()
        .locator('img')
        .evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      8,
      'the 8×8 test image',
    );
    await screenshot(page, 'verify');

    // Exports: the report as JSON, and the HTML page the CLI writes, from the Node side.
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()]);
    const report = JSON.parse(readFileSync((await json.path())!, 'utf8'));
    assert.equal(report.verdict, 'PASS');
    assert.equal(report.runs[0].metrics.correct, 356);
    const [html] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export HTML' }).click()]);
    assert.match(html.suggestedFilename(), /^ckpt-verify-.*\.html$/);
    const page2 = readFileSync((await html.path())!, 'utf8');
    assert.match(page2, /<span class="verdict pass">PASS<\/span>/);
    assert.match(page2, /98\.89%/);
    assert.deepEqual(app.browser.problems, []);
  });

  it('says why a run cannot start, and keeps the result across views', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await showView(page, 'Checkpoint');
    await showView(page, 'Verify');
    assert.equal(await page.getByTestId('verify-verdict').getAttribute('data-verdict'), 'PASS');
    await page.getByTestId('verify-model').fill('model.onnx');
    await page.getByRole('alert').filter({ hasText: 'The graph needs an absolute path.' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Run verification' }).isDisabled(), true);
    await page.getByTestId('verify-model').fill(join(SAMPLE_DIR, 'model.onnx'));
    assert.equal(await page.getByRole('button', { name: 'Run verification' }).isDisabled(), false);
    assert.deepEqual(app.browser.problems, []);
  });

  it("labels each run's throughput, and says when the gap is timing noise", async () => {
    const { page } = app.browser;
    assert.match(await page.getByTestId('throughput').innerText(), /^Converted run [\d,]+ images\/s · Source run [\d,]+ images\/s/);
    // 360 samples take milliseconds: too short for the two speeds to say anything (verify-speed.test.ts has the other cases)
    assert.match(await page.getByTestId('speed-note').innerText(), /^too short to compare: \d+ ms of inference in the shorter run, one timed pass each$/);
    assert.doesNotMatch(await page.getByTestId('run-details').innerText(), /slower/);
  });

  it('shows the last result again after a reload, marked with its time, until it is cleared', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await page.reload(); // the address keeps the view: Verify again, with the same open file
    await page.getByTestId('open-file').filter({ hasText: 'dp.pt' }).waitFor();
    await showView(page, 'Verify');
    const verdict = page.getByTestId('verify-verdict');
    await verdict.waitFor();
    assert.equal(await verdict.getAttribute('data-verdict'), 'PASS');
    const restored = await page.getByTestId('verify-restored').innerText();
    assert.match(restored, /^The last result in this folder, from .*\d{1,2}:\d{2}:\d{2}.*: run it again to check the files now\.$/);
    assert.equal(await page.getByTestId('accuracy-chart').getByTestId('accuracy-top1').count(), 2);
    await page.getByRole('button', { name: 'Clear result' }).click();
    await page.reload(); // the address keeps the view: Verify again, with the same open file
    await page.getByTestId('open-file').filter({ hasText: 'dp.pt' }).waitFor();
    await showView(page, 'Verify');
    await page.getByRole('heading', { name: 'Nothing verified yet' }).waitFor();
    assert.equal(await page.getByTestId('verify-verdict').count(), 0);
    assert.deepEqual(app.browser.problems, []);
  });
});
