// The Devices view in a real browser against the real backend, with a fake `nvidia-smi` first on
// the server's PATH. It serves the real `nvidia-smi topo -m` capture of an 8× A100-SXM4-40GB box
// (test/fixtures/nvidia-smi/topo-a100-sxm4-40gb-8-nic.txt). That capture has no --query-gpu
// output, so the fake answers the query with the GPU name the capture's source states and N/A
// for every number it does not know, as nvidia-smi prints N/A.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeA100, serverEnv } from './fake-nvidia-smi.ts';
import { browserSkipReason, openByAddress, REPO, SAMPLE_DIR, screenshot, serveAndBrowse, tempDir } from './helpers.ts';

const skip = browserSkipReason();
const CUDA3 = join(REPO, 'test', 'fixtures', 'torch', 'cuda3_single.pt');

describe('devices view', { skip: skip ?? false }, () => {
  let fake: string;
  before(() => {
    fake = fakeA100();
  });
  after(() => rmSync(fake, { recursive: true, force: true }));

  describe('an 8-GPU machine', () => {
    const app = serveAndBrowse({ env: () => serverEnv(fake), url: (server) => `${server.url}#/devices`, height: 1000 });

    it('shows 8 GPU cards and the topology matrix with its legend', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      const cards = page.getByTestId('gpu-card');
      await cards.first().waitFor();
      assert.equal(await cards.count(), 8);
      assert.match(await cards.nth(3).innerText(), /GPU 3\s+cuda:3\s+NVIDIA A100-SXM4-40GB/);
      assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /8 NVIDIA GPUs: 8× NVIDIA A100-SXM4-40GB \(driver 525\.125\.06\)/);
      const matrix = page.getByRole('table', { name: 'GPU topology matrix' });
      await matrix.waitFor();
      // 8 GPU rows and 3 NIC rows; GPU0 ↔ GPU1 over 12 bonded NVLinks, GPU0 ↔ NIC0 over PXB.
      assert.equal(await matrix.locator('tbody tr').count(), 11);
      const gpu0 = matrix.locator('tbody tr').first();
      assert.equal(await gpu0.getByTestId('topology-cell').nth(1).innerText(), 'NV12');
      assert.match((await gpu0.getByTestId('topology-cell').nth(1).getAttribute('title'))!, /bonded set of 12 NVLinks/);
      assert.equal(await gpu0.getByTestId('topology-cell').nth(8).innerText(), 'PXB');
      assert.match(await page.getByRole('list', { name: 'Link legend' }).innerText(), /SYS\s+Connection traversing PCIe as well as the SMP interconnect/);
      // The sample DP checkpoint (cuda:0) loads as saved here.
      const plan = page.getByTestId('device-plan');
      await plan.getByText('Loads as saved').waitFor();
      await screenshot(page, 'devices');
      assert.deepEqual(app.browser.problems, []);
    });
  });

  describe('a cuda:3 checkpoint on a 2-GPU machine', () => {
    // The 8-GPU box restricted to two GPUs, as a 2-GPU job sees it.
    const app = serveAndBrowse({ env: () => serverEnv(fake, '4,5'), url: (server) => `${server.url}#/devices?file=${encodeURIComponent(CUDA3)}` });

    it('proposes a remap, and Apply in Convert sets it up', { timeout: 60_000 }, async () => {
      const { page } = app.browser;
      const plan = page.getByTestId('device-plan');
      await plan.getByText('Does not load as saved').waitFor();
      assert.match(await plan.innerText(), /2 CUDA devices visible: cuda:0 = GPU 4 \(NVIDIA A100-SXM4-40GB\), cuda:1 = GPU 5 \(NVIDIA A100-SXM4-40GB\)\./);
      const tag = plan.getByTestId('plan-tag');
      assert.equal(await tag.count(), 1);
      assert.equal(await tag.getAttribute('data-loads'), 'false');
      assert.match(await tag.innerText(), /cuda:3[\s\S]*✗ no[\s\S]*Attempting to deserialize object on CUDA device 3 but torch\.cuda\.device_count\(\) is 2/);
      const fix = page.getByTestId('device-fix');
      assert.match(await fix.innerText(), /Remap cuda:3 → cuda:0/);
      // Two of the eight cards are visible to CUDA, as cuda:0 and cuda:1.
      assert.match(await page.getByTestId('gpu-card').nth(4).innerText(), /GPU 4\s+cuda:0/);
      assert.match(await page.getByTestId('gpu-card').nth(0).innerText(), /hidden from CUDA/);
      await fix.scrollIntoViewIfNeeded();
      await screenshot(page, 'devices-plan');

      await fix.getByRole('button', { name: 'Apply in Convert' }).click();
      await page.getByRole('status').filter({ hasText: 'Applied from Devices' }).waitFor();
      assert.equal(await page.getByRole('radio', { name: 'single GPU' }).isChecked(), true);
      assert.equal(await page.getByRole('spinbutton', { name: 'GPU index' }).inputValue(), '0');
      assert.equal(await page.getByRole('textbox', { name: 'Remap from 1' }).inputValue(), 'cuda:3');
      assert.equal(await page.getByRole('textbox', { name: 'Remap to 1' }).inputValue(), 'cuda:0');
      const change = page.getByTestId('preview').getByTestId('device-change').first();
      await change.filter({ hasText: /cuda:3\s*→\s*cuda:0/ }).waitFor();
      await screenshot(page, 'convert-applied-plan');
      assert.deepEqual(app.browser.problems, []);
    });
  });
});

describe('devices view without nvidia-smi', { skip: skip ?? false }, () => {
  let empty: string;
  before(() => {
    // A PATH with nothing on it: no nvidia-smi to find, whatever this machine has.
    empty = tempDir('no-smi');
  });
  after(() => rmSync(empty, { recursive: true, force: true }));
  const app = serveAndBrowse({ env: () => ({ PATH: empty }), url: (server) => `${server.url}#/devices` });

  it('says calmly that there is no NVIDIA GPU, and why', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const none = page.getByTestId('no-gpu');
    await none.waitFor();
    assert.equal(await none.getAttribute('data-reason'), 'no-nvidia-smi');
    assert.match(await none.innerText(), /No nvidia-smi on PATH/);
    assert.equal(await page.getByTestId('gpu-card').count(), 0);
    // with a cuda:1 checkpoint open, the view says why there is no GPU once, not three times
    await page
      .getByTestId('device-plan')
      .getByText(/Loads as saved|Does not load as saved/)
      .waitFor(); // the sample opened first
    await openByAddress(page, 'devices', join(SAMPLE_DIR, 'cuda1.pt'));
    await page.getByTestId('device-plan').getByText('Does not load as saved').waitFor();
    const text = await page.locator('main').innerText();
    assert.equal(text.split('No nvidia-smi on PATH').length - 1, 1, text);
    assert.equal(text.split('No NVIDIA GPU found').length - 1, 1, text);
    assert.match(text, /Attempting to deserialize object on a CUDA device but torch\.cuda\.is_available\(\) is False/);
    assert.deepEqual(app.browser.problems, []);
  });
});
