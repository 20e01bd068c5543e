// "Loads on this machine" in the Checkpoint view, against the real backend: a cuda-tagged file on
// a machine without NVIDIA GPUs offers Convert to CPU; a cuda:3 file on a 2-GPU machine offers
// the remap; TorchScript and numpy files name their own loader instead of torch.load's
// weights_only. What the view says is what torch does (test/interop/load-claims.test.ts).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeA100, serverEnv } from './fake-nvidia-smi.ts';
import { browserSkipReason, openByAddress, REPO, SAMPLE_DIR, screenshot, serveAndBrowse, tempDir } from './helpers.ts';

const skip = browserSkipReason();
const TORCH = join(REPO, 'test', 'fixtures', 'torch');

describe('loads on this machine', { skip: skip ?? false }, () => {
  describe('a machine without NVIDIA GPUs', () => {
    let empty: string;
    before(() => {
      empty = tempDir('no-smi');
    });
    after(() => rmSync(empty, { recursive: true, force: true }));
    const app = serveAndBrowse({
      env: () => ({ PATH: empty }),
      url: (s) => `${s.url}#/checkpoint?file=${encodeURIComponent(join(SAMPLE_DIR, 'cuda1.pt'))}`,
      width: 1024,
      height: 700,
    });

    it('a cuda:1 file: no, because CUDA is not available; Convert to CPU sets it up', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      const here = page.getByTestId('loads-here');
      await here.and(page.locator('[data-loads="no"]')).waitFor();
      assert.match(
        await here.innerText(),
        /Loads on this machine:\s*no, because cuda:1: Attempting to deserialize object on a CUDA device but torch\.cuda\.is_available\(\) is False/,
      );
      assert.deepEqual(await here.getByRole('button').allInnerTexts(), ['Convert to CPU']);
      await screenshot(page, 'loads-here-no-gpu-1024');
      await here.getByRole('button', { name: 'Convert to CPU' }).click();
      await page.getByRole('status').filter({ hasText: 'Applied from Devices' }).waitFor();
      assert.equal(await page.getByRole('radio', { name: 'CPU' }).isChecked(), true);
      await page
        .getByTestId('preview')
        .getByTestId('device-change')
        .filter({ hasText: /cuda:1\s*→\s*cpu/ })
        .waitFor();
      assert.deepEqual(app.browser.problems, []);
    });

    it('TorchScript: weights_only=True refuses it, torch.jit.load loads it; no convert buttons', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      await openByAddress(page, 'checkpoint', join(TORCH, 'torchscript.pt'));
      // the top bar names the file at once; the panels follow when its report arrives
      await page.getByRole('list', { name: 'Evidence' }).filter({ hasText: 'TorchScript module' }).waitFor();
      const wo = page.getByTestId('weights-only');
      await wo.and(page.locator('[data-loads="false"]')).waitFor();
      assert.match(await wo.innerText(), /torch\.load\(f, weights_only=True\) refuses it: a TorchScript archive: torch 2\.x refuses weights_only=True/);
      assert.match(await page.getByTestId('loads-with').innerText(), /Load it with torch\.jit\.load\(f, map_location='cpu'\)/);
      const here = page.getByTestId('loads-here');
      await here.and(page.locator('[data-loads="yes"]')).waitFor();
      assert.equal(await here.getByRole('button').count(), 0);
      assert.match(
        await page.getByRole('list', { name: 'Evidence' }).innerText(),
        /TorchScript module __torch__\.fixture_models\.SmallCNN at the top level with 16 keys/,
      );
    });

    it('a numpy .npz: named arrays that numpy.load reads, not torch.load', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      await openByAddress(page, 'checkpoint', join(SAMPLE_DIR, 'digits-test.npz'));
      const wo = page.getByTestId('weights-only');
      // wait for this file's claim: the TorchScript file opened before it also shows data-loads="false"
      await wo
        .and(page.locator('[data-loads="false"]'))
        .filter({ hasText: /numpy \.npz archive/ })
        .waitFor();
      assert.match(await wo.innerText(), /refuses it: a numpy \.npz archive, not a torch\.save file/);
      assert.match(await page.getByRole('list', { name: 'Evidence' }).innerText(), /named numpy arrays at the top level with 2 keys/);
      assert.match(await page.getByTestId('loads-here').innerText(), /Load it with numpy\.load\(f\)/);
      assert.deepEqual(app.browser.problems, []);
    });
    it("a training checkpoint shows its values: epoch, best_acc (a numpy scalar) and the optimizer's lr", { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      await openByAddress(page, 'checkpoint', join(SAMPLE_DIR, 'checkpoint.pth.tar'));
      const values = page.getByTestId('values');
      await values.waitFor();
      const rows = await values.getByTestId('value').allInnerTexts();
      assert.ok(rows.includes('epoch 15 int'), rows.join(' | '));
      assert.ok(
        rows.some((r) => /^best_acc 0\.98888885\d* numpy\.float64$/.test(r)),
        rows.join(' | '),
      );
      assert.ok(rows.includes('optimizer/param_groups/[0]/lr 0.003 float'), rows.join(' | '));
      await values.getByRole('button', { name: /Show all \d+/ }).click();
      assert.ok((await values.getByTestId('value').count()) > 6);
      await screenshot(page, 'checkpoint-values-1024');
      assert.deepEqual(app.browser.problems, []);
    });
  });

  describe('a cuda:3 file on a 2-GPU machine', () => {
    let fake: string;
    before(() => {
      fake = fakeA100();
    });
    after(() => rmSync(fake, { recursive: true, force: true }));
    const app = serveAndBrowse({
      env: () => serverEnv(fake, '4,5'),
      url: (s) => `${s.url}#/checkpoint?file=${encodeURIComponent(join(TORCH, 'cuda3_single.pt'))}`,
      width: 1024,
      height: 700,
    });

    it('no, because device 3 does not exist here; Map cuda:3 → cuda:0 sets up the remap', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      const here = page.getByTestId('loads-here');
      await here.and(page.locator('[data-loads="no"]')).waitFor();
      assert.match(await here.innerText(), /no, because cuda:3: Attempting to deserialize object on CUDA device 3 but torch\.cuda\.device_count\(\) is 2/);
      assert.deepEqual(await here.getByRole('button').allInnerTexts(), ['Map cuda:3 → cuda:0', 'Convert to CPU']);
      await screenshot(page, 'loads-here-remap-1024');
      await here.getByRole('button', { name: 'Map cuda:3 → cuda:0' }).click();
      await page.getByRole('status').filter({ hasText: 'Applied from Devices' }).waitFor();
      assert.equal(await page.getByRole('textbox', { name: 'Remap from 1' }).inputValue(), 'cuda:3');
      assert.equal(await page.getByRole('textbox', { name: 'Remap to 1' }).inputValue(), 'cuda:0');
      await page
        .getByTestId('preview')
        .getByTestId('device-change')
        .filter({ hasText: /cuda:3\s*→\s*cuda:0/ })
        .waitFor();
      assert.deepEqual(app.browser.problems, []);
    });
  });
});
