// The Diff view in a real browser against the real backend: the sample's dp.pt against its cpu
// copy (layout only), then the torch-made base file against one with a perturbed tensor: exactly
// that row, its max |Δ| as torch computed it, a bar in the per-layer chart, both histograms
// overlaid on a click, and the filter; then a conversion run in the Convert view, picked in one
// click as "the last conversion against its source".
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';
import { browserSkipReason, REPO, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();
const FIT = join(REPO, 'test', 'fixtures', 'fit');

describe('diff view', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ height: 1000 });
  const dir = tempDir('diff');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('shows a layout-only pair, then exactly the perturbed tensor with its max |Δ|', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Diff');
    assert.equal(await page.getByTestId('diff-a').inputValue(), join(SAMPLE_DIR, 'dp.pt'), 'a starts as the open checkpoint');
    await page.getByTestId('diff-b').fill(join(SAMPLE_DIR, 'cpu.pt'));
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    const summary = page.getByTestId('diff-summary');
    await summary.waitFor();
    assert.equal(await summary.getAttribute('data-verdict'), 'layout-only');
    assert.match(await page.getByTestId('diff-counts').innerText(), /^\d+ identical · 0 changed · 0 only in a · 0 only in b$/);

    await page.getByTestId('diff-a').fill(join(FIT, 'diff_base.pt'));
    await page.getByTestId('diff-b').fill(join(FIT, 'diff_perturbed.pt'));
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    await page.locator('[data-verdict="different"]').waitFor();
    const rows = page.getByTestId('diff-row');
    assert.equal(await rows.count(), 1);
    const want = (JSON.parse(readFileSync(join(FIT, 'cases.json'), 'utf8')) as { diff: { name: string; maxAbsDiff?: number }[] }).diff.find(
      (d) => d.name === 'perturbed',
    )!.maxAbsDiff!;
    const cells = await rows.first().locator('td').allInnerTexts();
    assert.equal(cells[0], 'conv2.weight');
    assert.equal(Number(cells[2]), Number(want.toPrecision(4)));
    assert.equal(await page.getByTestId('diff-bar').count(), 1);

    // a click on the row: both tensors' histograms over one range, b drawn over a
    await rows.first().click();
    const hist = page.getByTestId('diff-histograms');
    await hist.getByTestId('diff-hist-stats').waitFor();
    const numel = (() => {
      const ck = openCheckpoint(join(FIT, 'diff_base.pt'));
      try {
        return ck.tensors.find((t) => t.path.join('.') === 'conv2.weight')!.tensor.numel;
      } finally {
        ck.close();
      }
    })();
    const svg = hist.getByRole('img');
    assert.match(
      (await svg.getAttribute('aria-label'))!,
      new RegExp(`^Histogram of conv2\\.weight in a, with b overlaid: ${numel.toLocaleString('en-US')} values in 48 bins from `),
    );
    assert.ok((await hist.getByTestId('histogram-overlay-bar').count()) > 0, 'b is drawn over a');
    // b differs from a in 2 elements: the two series share the range, and b's bars sum to the same count
    const overlayTotal = (await hist.getByTestId('histogram-overlay-bar').locator('title').allTextContents())
      .map((t) => Number(t.split(': ').at(-1)!.replace(/,/g, '')))
      .reduce((x, y) => x + y, 0);
    assert.equal(overlayTotal, numel);
    await screenshot(page, 'diff');
    await page.getByTestId('diff-filter').fill('fc.');
    assert.equal(await rows.count(), 0, 'the filter hides rows that do not match');
  });

  it('picks the last conversion against its source in one click', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    assert.equal(await page.getByTestId('diff-last-conversion').isDisabled(), true, 'nothing converted yet');
    await showView(page, 'Convert');
    const out = join(dir, 'digits-cpu.pt');
    await page.getByTestId('output-path').fill(out);
    await page.getByTestId('preview').getByText(out, { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Run conversion' }).click();
    await page.locator('[data-testid="conversion-result"][data-verified="true"]').waitFor({ timeout: 60_000 });

    await showView(page, 'Diff');
    await page.getByTestId('diff-last-conversion').click();
    await page.locator('[data-testid="diff-summary"][data-verdict="layout-only"]').waitFor();
    assert.equal(await page.getByTestId('diff-a').inputValue(), join(SAMPLE_DIR, 'dp.pt'));
    assert.equal(await page.getByTestId('diff-b').inputValue(), out);
    assert.match(await page.getByTestId('diff-counts').innerText(), /^16 identical · 0 changed · 0 only in a · 0 only in b$/);
  });
});
