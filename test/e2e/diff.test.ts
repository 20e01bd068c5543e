// The Diff view in a real browser against the real backend: the sample's dp.pt against its cpu
// copy (layout only), then the torch-made base file against one with a perturbed tensor: exactly
// that row, its max |Δ| as torch computed it, a bar in the per-layer chart, and the filter.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, REPO, SAMPLE_DIR, screenshot, serveAndBrowse, showView } from './helpers.ts';

const skip = browserSkipReason();
const FIT = join(REPO, 'test', 'fixtures', 'fit');

describe('diff view', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ height: 1000 });

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
    await screenshot(page, 'diff');
    await page.getByTestId('diff-filter').fill('fc.');
    assert.equal(await rows.count(), 0, 'the filter hides rows that do not match');
  });
});
