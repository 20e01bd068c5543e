// The key tree of the Checkpoint view: a whole pickled model lists its state-dict keys
// (module.conv1.weight), with the pickle's attribute paths (_modules/module/_modules/conv1/_parameters/weight)
// on demand; the filter also finds the non-tensor values (epoch, best_acc, the optimizer's lr).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, openByAddress, REPO, SAMPLE_DIR, screenshot, serveAndBrowse } from './helpers.ts';

const skip = browserSkipReason();

describe('the key tree', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ width: 1024, height: 700 });

  it('a whole pickled DataParallel model shows its state-dict keys, and its pickle paths on demand', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await openByAddress(page, 'checkpoint', join(SAMPLE_DIR, 'whole_model_dp.pt'));
    const tree = page.getByTestId('key-tree');
    const key = tree.locator('[data-key="module.conv1.weight"]');
    await key.waitFor();
    assert.equal(await tree.locator('[data-key^="_modules"]').count(), 0, 'no pickle internals by default');
    await key.click();
    assert.equal(await page.getByTestId('tensor-detail').getByRole('heading', { level: 2 }).textContent(), 'module.conv1.weight');
    assert.equal(await page.getByTestId('pickle-path').textContent(), '_modules/module/_modules/conv1/_parameters/weight');
    await screenshot(page, 'checkpoint-whole-model-keys-1024');

    const naming = page.getByRole('group', { name: 'Name tensors by' });
    await naming.getByRole('button', { name: 'pickle paths' }).click();
    await tree.locator('[data-key="_modules/module/_modules/conv1/_parameters/weight"]').waitFor();
    assert.equal(await tree.locator('[data-key="module.conv1.weight"]').count(), 0);
    await naming.getByRole('button', { name: 'state_dict keys' }).click();
    await tree.locator('[data-key="module.conv1.weight"]').waitFor();

    // a plain state dict has no such choice
    await openByAddress(page, 'checkpoint', join(SAMPLE_DIR, 'cpu.pt'));
    await tree.locator('[data-key="conv1.weight"]').waitFor();
    assert.equal(await page.getByRole('group', { name: 'Name tensors by' }).count(), 0);
    assert.deepEqual(app.browser.problems, []);
  });

  it('the filter finds non-tensor values: epoch, best_acc and the optimizer hyper-parameters', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await openByAddress(page, 'checkpoint', join(SAMPLE_DIR, 'checkpoint.pth.tar'));
    const tree = page.getByTestId('key-tree');
    await page.getByTestId('tensor-count').waitFor();
    const filter = page.getByRole('searchbox', { name: 'Filter keys' });
    await filter.fill('best_acc');
    // torch saved best_acc as a numpy float64; its number, not pickle internals
    const row = tree.locator('[data-key^="best_acc = "]');
    await row.waitFor();
    assert.match((await row.getAttribute('data-key')) ?? '', /^best_acc = 0\.98888/);
    assert.match((await row.textContent()) ?? '', /numpy\.float64/);
    assert.match((await page.getByTestId('key-count').textContent()) ?? '', /0 of \d+ tensors, 1 value/);
    await filter.fill('epoch');
    await tree.locator('[data-key="epoch = 15"]').waitFor();
    await filter.fill('param_groups/[0]/lr');
    await tree.locator('[data-key="optimizer/param_groups/[0]/lr = 0.003"]').waitFor();
    await screenshot(page, 'checkpoint-values-filter-1024');
    // a tensor key and no value
    await filter.fill('conv1.weight');
    await tree.locator('[data-key="model/module.conv1.weight"]').waitFor();
    assert.doesNotMatch((await page.getByTestId('key-count').textContent()) ?? '', /value/);
    assert.deepEqual(app.browser.problems, []);
  });

  it("a file with one tensor says '1 tensor', not '1 tensors'", { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await openByAddress(page, 'checkpoint', join(REPO, 'test', 'fixtures', 'numpy', 'dtype_f4.npy'));
    await page.getByRole('searchbox', { name: 'Filter keys' }).fill('');
    await page
      .getByTestId('key-count')
      .filter({ hasText: /^\s*1 tensor\s*$/ })
      .waitFor();
    const totals = await page.getByRole('region', { name: 'Contents' }).innerText();
    assert.match(totals, /^1\s+tensor$/m);
    assert.match(totals, /^1\s+storage$/m);
    assert.doesNotMatch(await page.locator('main').innerText(), /\b1 (tensors|keys|storages)\b/);
    assert.deepEqual(app.browser.problems, []);
  });
});
