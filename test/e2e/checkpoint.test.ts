// The Checkpoint view in a real browser against the real backend: the sample DP checkpoint on
// first launch, a 10,000-key checkpoint in the virtualised key tree, and a DeepSpeed ZeRO folder
// of the real corpus (../shared/corpus/deepspeed).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHARED_DIR, sharedSkipReason } from '../helpers/shared-dir.ts';
import {
  browserSkipReason,
  makeCheckpoint,
  openByAddress,
  REPO,
  SAMPLE_DIR,
  screenshot,
  serveAndBrowse,
  showView,
  tempDir,
  torchSkipReason,
} from './helpers.ts';

const skip = browserSkipReason();

describe('checkpoint view', { skip: skip ?? false }, () => {
  const app = serveAndBrowse();

  it('opens the sample DP checkpoint on first launch: DP verdict, evidence and module. prefixes', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const verdict = page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict');
    await verdict.waitFor();
    assert.equal(await verdict.getAttribute('data-kind'), 'dp');
    assert.match(await verdict.innerText(), /DP\s+DataParallel/);
    assert.match(await page.getByTestId('open-file').innerText(), /digits-cnn\/\s*dp\.pt/);
    assert.match(await page.getByRole('list', { name: 'Evidence' }).innerText(), /every key starts with 'module\.'/);
    assert.equal(await page.getByTestId('layout-prefix').innerText(), 'module.');
    assert.equal(await page.getByTestId('tensor-count').innerText(), '16');
    // The key tree shows the wrapper prefix as a chip, with the model's keys under it.
    const tree = page.getByRole('tree', { name: 'Key tree' });
    await tree.getByText('module.', { exact: true }).waitFor();
    assert.ok((await tree.getByRole('treeitem', { name: /running_mean/ }).count()) >= 2);
    assert.equal(await page.getByTestId('security').getAttribute('data-verdict'), 'safe');

    // Selecting a tensor reads its values on the Node side.
    await tree
      .getByRole('treeitem')
      .filter({ hasText: /^\s*weight/ })
      .first()
      .click();
    const stats = page.getByTestId('tensor-stats');
    await stats.waitFor();
    assert.match(await stats.innerText(), /elements\s+72\b/);
    assert.match(await page.getByTestId('tensor-detail').innerText(), /module\.conv1\.weight/);
    await page.getByRole('img', { name: /Histogram of the finite values/ }).waitFor();
    await screenshot(page, 'checkpoint');
    await page.emulateMedia({ colorScheme: 'light' });
    await screenshot(page, 'checkpoint-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.deepEqual(app.browser.problems, []);
  });

  it('opens another checkpoint through the in-app file browser, and lists it under Recent', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('button', { name: 'Open…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Open a checkpoint' });
    await dialog.waitFor();
    // It starts in the open file's folder; checkpoints are marked by content.
    const entry = (name: string) => dialog.getByTestId('file-entry').filter({ hasText: name });
    await entry('cpu.pt').first().waitFor();
    assert.equal(await entry('legacy_cpu.pt').locator('.ckpt-badge').count(), 1);
    assert.equal(await entry('README.md').locator('.ckpt-badge').count(), 0);
    await entry('ddp').dblclick();
    await entry('rank1.pt').waitFor();
    await screenshot(page, 'file-browser');
    await dialog.getByRole('button', { name: 'Up one folder' }).click();
    await entry('legacy_cpu.pt').click();
    await dialog.getByRole('button', { name: 'Open', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    const verdict = page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict');
    await page.getByTestId('open-file').filter({ hasText: 'legacy_cpu.pt' }).waitFor();
    await verdict.and(page.locator('[data-kind="cpu"]')).waitFor();
    assert.match(await page.getByRole('region', { name: 'Contents' }).innerText(), /PyTorch legacy/);

    await page.getByRole('button', { name: 'Recent' }).click();
    const recent = page.getByRole('menu', { name: 'Recent files' }).getByRole('menuitem');
    assert.equal(await recent.count(), 1);
    assert.match(await recent.first().innerText(), /legacy_cpu\.pt/);
    await page.keyboard.press('Escape');
    assert.deepEqual(app.browser.problems, []);
  });

  it('moves through the key tree with the keyboard', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    const tree = page.getByRole('tree', { name: 'Key tree' });
    const items = tree.getByRole('treeitem');
    const all = await items.count();
    await tree.focus();
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await items.count(), all - 2, 'conv1 collapsed over its weight and bias');
    assert.equal(
      await tree
        .getByRole('treeitem', { expanded: false })
        .first()
        .innerText()
        .then((t) => t.trim().split(/\s/)[0]),
      'conv1',
    );
    await page.keyboard.press('ArrowRight');
    assert.equal(await items.count(), all, 'and opened again');
    await page.keyboard.press('End');
    const last = tree.getByRole('treeitem', { selected: true });
    await last.waitFor();
    assert.match(await page.getByTestId('tensor-detail').innerText(), /fc\.bias/);
    assert.deepEqual(app.browser.problems, []);
  });

  it('Verify and Re-shard start from the open checkpoint (legacy_cpu.pt, opened above)', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await showView(page, 'Verify');
    await page.getByRole('complementary', { name: 'Verification settings' }).waitFor();
    assert.equal(await page.getByTestId('verify-source').inputValue(), join(SAMPLE_DIR, 'legacy_cpu.pt'));
    await page.getByRole('heading', { name: 'Nothing verified yet' }).waitFor();
    await showView(page, 'Re-shard');
    assert.equal(await page.getByTestId('reshard-input').first().inputValue(), join(SAMPLE_DIR, 'legacy_cpu.pt'));
    await page.getByRole('heading', { name: 'Plan first' }).waitFor();
    await showView(page, 'Checkpoint');
    assert.deepEqual(app.browser.problems, []);
  });

  it('the Security card names each finding: its class, the call it would make, the opcode offset in its pickle', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    // `ckpt scan --json` of this fixture: posix.system, dangerous, at byte 217 of archive/data.pkl
    await openByAddress(page, 'checkpoint', join(REPO, 'test/fixtures/security/evil/torch_zip_system.pt'));
    const card = page.getByTestId('security');
    await card.and(page.locator('[data-verdict="dangerous"]')).waitFor();
    const finding = card.getByTestId('security-global').filter({ hasText: 'posix.system' });
    assert.equal(await finding.getAttribute('data-class'), 'dangerous');
    assert.equal(await finding.getByTestId('security-call').innerText(), 'posix.system("touch CKPT_SCAN_MARKER")');
    assert.equal(await finding.getByTestId('security-where').innerText(), 'dangerous · opcode at byte 217 of archive/data.pkl');
    const safe = card.getByTestId('security-global').filter({ hasText: 'torch._utils._rebuild_tensor_v2' });
    assert.match(await safe.getByTestId('security-where').innerText(), /^safe · opcode at byte \d+ of archive\/data\.pkl$/);
    assert.deepEqual(app.browser.problems, []);
  });
});

describe('key tree with 10,000 tensors', { skip: skip ?? torchSkipReason() ?? false }, () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = tempDir('keys10k');
    file = join(dir, 'keys10k.pt');
    makeCheckpoint('keys10k', file);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ url: (server) => `${server.url.replace(/\/\?.*/, '/')}?token=${server.token}#/checkpoint?file=${encodeURIComponent(file)}` });

  it('renders only the visible rows, scrolls to the end, and search finds a key', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByTestId('tensor-count').filter({ hasText: '10,000' }).waitFor();
    await page.getByRole('button', { name: 'List', exact: true }).click();
    const list = page.getByRole('listbox', { name: 'Key list' });
    const rows = list.getByTestId('key-row');
    await rows.first().waitFor();
    const rendered = await rows.count();
    assert.ok(rendered > 10 && rendered < 120, `${rendered} rows in the DOM for 10,000 keys`);

    // Scroll to the end in steps, as a wheel would, timing each frame.
    const frames = (await page.evaluate(`(async () => {
      const v = document.querySelector('[data-testid="key-tree"]');
      const times = [];
      let last = performance.now();
      while (v.scrollTop + v.clientHeight < v.scrollHeight - 1) {
        v.scrollTop += 2400;
        await new Promise(requestAnimationFrame);
        const now = performance.now();
        times.push(now - last);
        last = now;
      }
      return times;
    })()`)) as number[];
    const last = list.getByTestId('key-row').filter({ hasText: 'module.layers.1999.norm.weight' });
    await last.waitFor();
    assert.ok((await rows.count()) < 120, 'still only the visible rows after scrolling');
    const sorted = [...frames].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    assert.ok(frames.length > 50, `${frames.length} scroll steps`);
    // Rendering every row would take hundreds of ms a frame; the visible slice takes a few.
    assert.ok(median < 100, `median frame while scrolling ${median.toFixed(1)} ms`);

    // Search: a substring, then a regular expression.
    await page.getByRole('searchbox', { name: 'Filter keys' }).fill('layers.1234.mlp.b');
    const matches = page.getByRole('listbox', { name: 'Matching keys' }).getByTestId('key-row');
    await page.getByTestId('key-count').filter({ hasText: '1 of 10,000 tensors' }).waitFor();
    assert.equal(await matches.count(), 1);
    assert.equal(await matches.first().getAttribute('data-key'), 'module.layers.1234.mlp.bias');
    assert.equal(await matches.first().locator('mark').innerText(), 'layers.1234.mlp.b');
    assert.equal(await matches.first().locator('.chip').first().innerText(), 'module.');
    await page.getByRole('button', { name: '.*' }).click();
    await page.getByRole('searchbox', { name: 'Filter keys' }).fill('^module\\.layers\\.19\\d\\d\\.attn\\.weight$');
    await page.getByTestId('key-count').filter({ hasText: '100 of 10,000 tensors' }).waitFor();
    await matches.first().click();
    await page.getByTestId('tensor-stats').waitFor();
    assert.match(await page.getByTestId('tensor-stats').innerText(), /min\s+19000\b/);
    await screenshot(page, 'checkpoint-10k-search');
    assert.deepEqual(app.browser.problems, []);
  });
});

const DS = join(SHARED_DIR, 'corpus', 'deepspeed');

describe('a DeepSpeed ZeRO folder', { skip: skip ?? sharedSkipReason(DS) ?? false }, () => {
  const app = serveAndBrowse();

  it('shows stage, ranks, precision, tag, groups, frozen and shared params, optimizer state and the consolidated size per dtype', {
    timeout: 60_000,
  }, async () => {
    const { page } = app.browser;
    await page.getByTestId('tensor-count').waitFor(); // the sample opened first
    const folder = join(DS, 'stage3-ws2-bf16', 'checkpoint');
    await openByAddress(page, 'checkpoint', folder);
    const facts = page.getByRole('region', { name: 'Contents' }).getByTestId('zero-facts');
    await facts.waitFor();
    const fact = async (k: string): Promise<string> => (await facts.locator(`dd[data-fact="${k}"]`).innerText()).trim();
    assert.equal(await fact('Stage'), 'ZeRO-3');
    assert.equal(await fact('World size'), '2 ranks');
    assert.equal(await fact('Rank files'), 'bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt, bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt');
    assert.equal(await fact('Precision'), 'bf16');
    assert.equal(await fact('Tag'), 'global_step2');
    assert.equal(await fact('Param groups'), '3 params / 174 elements; 5 params / 44 elements');
    assert.equal(await fact('Frozen'), 'frozen.weight, frozen.bias');
    assert.equal(await fact('Shared'), 'head.weight → embed.weight');
    assert.equal(await fact('Optimizer state'), 'present (not consolidated)');
    // reference.pth's bytes cast with torch's .to() (test/interop/deepspeed.test.ts checks the numbers): 1332, 666 and 666 B
    assert.equal(await fact('Consolidated size'), 'fp32 1.30 KiB · bf16 666 B · fp16 666 B');
    assert.match(await page.getByRole('region', { name: 'Contents' }).innerText(), /DeepSpeed ZeRO/);
    await screenshot(page, 'checkpoint-deepspeed');
    assert.deepEqual(app.browser.problems, []);
  });
});
