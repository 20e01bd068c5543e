// Opening by path in web mode: a file path pasted into Open's path field opens the file (it used
// to say "is a file, not a folder"); a folder path still browses.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, SAMPLE_DIR, screenshot, serveAndBrowse } from './helpers.ts';

const skip = browserSkipReason();

describe('open by path', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ width: 1024, height: 700 });

  it('a pasted file path opens the file; a folder path browses it', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await page.getByRole('button', { name: 'Open…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Open a checkpoint' });
    const field = dialog.getByRole('textbox', { name: 'Folder or file path' });
    await dialog.getByTestId('file-entry').filter({ hasText: 'cpu.pt' }).first().waitFor();
    await field.fill(join(SAMPLE_DIR, 'ddp'));
    await field.press('Enter');
    await dialog.getByTestId('file-entry').filter({ hasText: 'rank1.pt' }).waitFor();
    await field.fill(join(SAMPLE_DIR, 'ddp', 'rank1.pt'));
    await screenshot(page, 'open-paste-path-1024');
    await field.press('Enter');
    await dialog.waitFor({ state: 'hidden' });
    await page.getByTestId('open-file').filter({ hasText: 'rank1.pt' }).waitFor();
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').and(page.locator('[data-kind="ddp"]')).waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
    assert.deepEqual(app.browser.problems, []);
  });
});
