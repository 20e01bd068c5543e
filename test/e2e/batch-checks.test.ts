// The Batch view's checks in a real browser against the real backend: "Parallel" refuses 0 and 65
// at the field; the dry run lists a truncated checkpoint as unreadable with its one-line reason and
// says what converting each other file changes; "Failures only" filters the list.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();

describe('batch view checks', { skip: skip ?? false }, () => {
  let dir: string;
  let input: string;
  let output: string;
  before(() => {
    dir = tempDir('batch-checks');
    input = join(dir, 'runs');
    output = join(dir, 'converted');
    mkdirSync(input);
    for (const f of ['cpu.pt', 'dp.pt', 'cuda1.pt']) copyFileSync(join(SAMPLE_DIR, f), join(input, f));
    const dp = readFileSync(join(SAMPLE_DIR, 'dp.pt'));
    writeFileSync(join(input, 'truncated.pt'), dp.subarray(0, Math.floor(dp.length / 2)));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ width: 1024, height: 700 });

  it('refuses 0 and 65 parallel conversions at the field, with the reason beside Run', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Batch');
    await page.getByTestId('batch-input').fill(input);
    await page.getByTestId('batch-output').fill(output);
    const parallel = page.getByRole('spinbutton', { name: 'Parallel conversions' });
    for (const bad of ['0', '65', '']) {
      await parallel.fill(bad);
      assert.equal(await parallel.getAttribute('aria-invalid'), 'true', `"${bad}" is marked invalid`);
      assert.equal(await page.getByTestId('batch-jobs-error').innerText(), 'Parallel must be a whole number from 1 to 64.');
      assert.equal(await parallel.getAttribute('aria-describedby'), 'batch-jobs-error');
      assert.equal(await page.getByRole('button', { name: 'Dry run' }).isDisabled(), true);
      assert.equal(await page.getByRole('button', { name: 'Start' }).isDisabled(), true);
      assert.match(await page.getByTestId('batch-blocked').innerText(), /^Parallel must be a whole number from 1 to 64\. Fix it above\.$/);
    }
    await screenshot(page, 'batch-parallel-invalid');
    await parallel.fill('64');
    assert.equal(await parallel.getAttribute('aria-invalid'), 'false');
    assert.equal(await page.getByTestId('batch-jobs-error').count(), 0);
    assert.equal(await page.getByTestId('batch-blocked').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Dry run' }).isDisabled(), false);
    await parallel.fill('2');
  });

  it('dry run: the truncated file is unreadable with its reason, the others say what changes', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByTestId('batch-status').filter({ hasText: 'Dry run' }).waitFor();
    const row = (name: string) =>
      page.getByTestId('batch-item').filter({ has: page.locator('.src', { hasText: new RegExp(`^${name.replace('.', '\\.')}$`) }) });
    const bad = row('truncated.pt');
    assert.equal(await bad.getAttribute('data-status'), 'failed');
    const badText = await bad.locator('.status').innerText();
    assert.match(badText, /^unreadable/);
    const reason = await bad.getByTestId('batch-reason').innerText();
    assert.match(reason, /truncated\.pt/);
    assert.doesNotMatch(reason, /\n/);
    assert.equal(await row('dp.pt').getAttribute('data-status'), 'pending');
    assert.match(await row('dp.pt').getByTestId('batch-change').innerText(), /\s16 keys renamed \(module\. removed\) · cuda:0→cpu 16 tensors$/);
    assert.match(await row('cuda1.pt').getByTestId('batch-change').innerText(), /cuda:1→cpu 16 tensors$/);
    assert.match(await row('cpu.pt').getByTestId('batch-change').innerText(), /no key or device changes: a plain copy$/);
    assert.equal(existsSync(output), false, 'a dry run writes nothing');
    await screenshot(page, 'batch-dry-run-checks');
  });

  it('"Failures only" shows just the failed files, after the run too', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const items = page.getByTestId('batch-item');
    const only = page.getByTestId('batch-failures-only');
    await only.check();
    assert.equal(await items.count(), 1);
    assert.match(await items.first().innerText(), /truncated\.pt/);
    await only.uncheck();
    assert.equal(await items.count(), 4);

    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('[data-testid="batch-overall"][data-phase="finished"]').waitFor({ timeout: 45_000 });
    assert.equal(await page.locator('[data-testid="batch-item"][data-status="done"]').count(), 3);
    await only.check();
    assert.equal(await items.count(), 1);
    assert.equal(await items.first().getAttribute('data-status'), 'failed');
    assert.deepEqual(app.browser.problems, []);
  });
});
