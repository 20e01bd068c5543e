// The Convert view in a real browser against the real backend: the sample DP checkpoint to
// `cpu`, a live preview, a verified result, and the written file checked with the engine; a
// 2 GiB conversion's progress, cancelled from the page.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';
import { bigSafetensors } from '../unit/service/helpers.ts';
import { browserSkipReason, screenshot, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();

describe('convert view', { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = tempDir('convert');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse();

  it('converts the sample DP checkpoint to cpu: live preview, verified result, a file the engine reads as plain cpu', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Convert');

    // The preview follows the rules as they are edited.
    const preview = page.getByTestId('preview');
    await preview.getByTestId('layout-after').filter({ hasText: /cpu/ }).waitFor();
    assert.equal(await page.getByRole('radio', { name: 'CPU' }).isChecked(), true);
    assert.match(await preview.getByTestId('kept-count').innerText(), /16\s+kept/);
    const firstChange = preview.getByTestId('key-change').first();
    assert.match(await firstChange.innerText(), /module\.conv1\.weight\s*→\s*conv1\.weight/);
    assert.match(await preview.getByTestId('device-change').first().innerText(), /cuda:0\s*→\s*cpu\s*16/);

    await page.getByText('Custom rules', { exact: true }).click();
    await page.getByRole('textbox', { name: 'Exclude' }).fill('^fc\\.');
    await preview
      .getByTestId('dropped-count')
      .filter({ hasText: /^2\s+dropped/ })
      .waitFor();
    await page.getByRole('textbox', { name: 'Exclude' }).fill('(');
    await page
      .getByRole('alert')
      .filter({ hasText: /Exclude: '\(' is not a valid regular expression/ })
      .waitFor();
    assert.equal(await page.getByRole('button', { name: 'Run conversion' }).isDisabled(), true);
    await page.getByRole('textbox', { name: 'Exclude' }).fill('');
    await preview
      .getByTestId('dropped-count')
      .filter({ hasText: /^0\s+dropped/ })
      .waitFor();

    const out = join(dir, 'digits-cpu.pt');
    await page.getByTestId('output-path').fill(out);
    await preview.getByText(out, { exact: true }).waitFor();
    await screenshot(page, 'convert-preview');

    await page.getByRole('button', { name: 'Run conversion' }).click();
    const result = page.getByTestId('conversion-result');
    await result.waitFor({ timeout: 60_000 });
    assert.equal(await result.getAttribute('data-verified'), 'true');
    assert.equal(await result.getByTestId('verified').innerText(), 'Verified');
    assert.match(await result.getByTestId('loads-with').innerText(), /torch\.load\(f\) with no map_location/);
    const checks = result.getByTestId('tensor-check');
    assert.equal(await checks.count(), 16);
    assert.equal(await result.locator('[data-testid="tensor-check"][data-ok="false"]').count(), 0);
    assert.match(await checks.first().innerText(), /conv1\.weight\s+float32\s+\[8, 1, 3, 3\]\s+cpu\s+[0-9a-f]{8}\s+✓/);
    // The preview is worked out again: the output now exists.
    await preview.getByText('exists', { exact: true }).waitFor();
    await page.locator('[aria-busy="false"]').filter({ has: preview }).waitFor();
    await screenshot(page, 'convert-result');
    // Running again would overwrite it: only once that is ticked.
    const run = page.getByRole('button', { name: 'Run conversion' });
    assert.equal(await run.isDisabled(), true);
    await page.getByRole('checkbox', { name: 'Overwrite it' }).check();
    await run.and(page.locator(':enabled')).waitFor();

    // The file on disk, read by the engine: no wrapper prefix, every tensor on the CPU.
    assert.ok(existsSync(out));
    const ck = openCheckpoint(out);
    try {
      const keys = ck.report.tensors.map((t) => String(t.path[t.path.length - 1]));
      assert.equal(keys.length, 16);
      assert.ok(keys.includes('conv1.weight') && keys.includes('fc.bias'));
      assert.deepEqual(
        keys.filter((k) => k.startsWith('module.')),
        [],
      );
      assert.deepEqual(Object.keys(ck.report.totals.byDevice), ['cpu']);
      assert.equal(ck.report.layout.kind, 'cpu');
    } finally {
      ck.close();
    }
    assert.deepEqual(app.browser.problems, []);
  });
});

describe('convert view, a long conversion', { skip: skip ?? false }, () => {
  let dir: string;
  let src: string;
  before(() => {
    dir = tempDir('convert-long');
    src = bigSafetensors(join(dir, 'big.safetensors'), 2 * 2 ** 30); // sparse: instant to make, seconds to convert
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ url: (server) => `${server.url}#/convert?file=${encodeURIComponent(src)}` });

  it('shows its progress while it runs, and Cancel stops it leaving nothing behind', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    const out = join(dir, 'big.pt');
    await page.getByTestId('output-path').fill(out);
    await page.getByTestId('preview').getByText(out, { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Run conversion' }).click();

    const progress = page.getByTestId('conversion-progress');
    await progress.waitFor();
    assert.equal(await progress.getAttribute('aria-label'), 'Conversion progress');
    await progress.getByText(/ of 2\.00 GiB$/).waitFor();
    assert.match(await progress.locator('b').innerText(), /^Converting…$/);
    const bar = progress.getByRole('progressbar', { name: 'Conversion progress' });
    assert.ok(Number(await bar.getAttribute('aria-valuenow')) < 100, 'not finished yet');
    await progress.getByRole('button', { name: 'Cancel' }).click();

    const error = page.getByTestId('conversion-error');
    await error.waitFor({ timeout: 30_000 });
    assert.match(await error.innerText(), /^Cancelled/);
    assert.deepEqual(readdirSync(dir), ['big.safetensors'], 'no output, no temporary file');
    assert.deepEqual(app.browser.problems, []);
  });

  it('a file that does not open says why, not "open a checkpoint first"', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const empty = join(dir, 'empty.pt');
    writeFileSync(empty, '');
    await page.evaluate(`location.hash = ${JSON.stringify(`#/convert?file=${encodeURIComponent(empty)}`)}`); // the app follows the address
    const error = page.getByTestId('convert-open-error');
    await error.waitFor();
    assert.match(await error.innerText(), new RegExp(`could not be opened:\\s+${empty}: the file is empty`));
  });
});
