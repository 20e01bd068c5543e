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

  it('the path in the top bar is editable: a pasted file opens, a folder opens Open… inside it', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const bar = page.getByTestId('open-file');
    await bar.getByRole('button').click();
    const field = page.getByRole('textbox', { name: 'Path of the checkpoint to open' });
    assert.equal(await field.inputValue(), join(SAMPLE_DIR, 'ddp', 'rank1.pt'), 'starts from the open file');
    // pasted with quotes, as a shell or a file manager copies it
    await field.fill(`'${join(SAMPLE_DIR, 'cuda1.pt')}'`);
    await screenshot(page, 'open-top-bar-path-1024');
    await field.press('Enter');
    await bar.filter({ hasText: 'cuda1.pt' }).waitFor();
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').and(page.locator('[data-kind="single-gpu"]')).waitFor();

    await bar.getByRole('button').click();
    await field.fill(join(SAMPLE_DIR, 'ddp'));
    await field.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Open a checkpoint' });
    await dialog.getByTestId('file-entry').filter({ hasText: 'rank0.pt' }).waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // a relative path is refused with what to do; Escape leaves the open file as it was
    await bar.getByRole('button').click();
    await field.fill('cpu.pt');
    await field.press('Enter');
    await page.getByRole('status').filter({ hasText: 'is not an absolute path' }).waitFor();
    await field.press('Escape');
    await bar.filter({ hasText: 'cuda1.pt' }).waitFor();
    assert.deepEqual(app.browser.problems, []);
  });
});
