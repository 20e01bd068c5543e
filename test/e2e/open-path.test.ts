// Opening by path in web mode: a file path pasted into Open's path field opens the file (it used
// to say "is a file, not a folder"); a folder path still browses.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
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

  it('a file dropped on the page is found under the recent folders by name, size and modified time', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    /** drops a File with this name, size and time on the window, as a file manager would */
    const drop = async (name: string, bytes: number, modifiedMs: number): Promise<void> => {
      const transfer = await page.evaluateHandle(
        `(() => { const dt = new DataTransfer(); dt.items.add(new File([new Uint8Array(${bytes})], ${JSON.stringify(name)}, { lastModified: ${modifiedMs} })); return dt; })()`,
      );
      const shell = page.getByRole('application', { name: 'Checkpoint Workstation' });
      await shell.dispatchEvent('dragenter', { dataTransfer: transfer });
      await shell.dispatchEvent('drop', { dataTransfer: transfer });
    };
    const legacy = join(SAMPLE_DIR, 'legacy_cpu.pt');
    const st = statSync(legacy);
    await drop('legacy_cpu.pt', st.size, Math.floor(st.mtimeMs));
    await page
      .getByRole('status')
      .filter({ hasText: `Found “legacy_cpu.pt” in ${SAMPLE_DIR}` })
      .waitFor();
    await page.getByTestId('open-file').filter({ hasText: 'legacy_cpu.pt' }).waitFor();
    await page.getByRole('region', { name: 'Contents' }).getByText('PyTorch legacy').waitFor();

    // a file that is nowhere under them: the file browser opens, saying why
    await drop('elsewhere.pt', 1234, Date.now());
    await page.getByRole('status').filter({ hasText: 'it is not under the recent folders' }).waitFor();
    const dialog = page.getByRole('dialog', { name: 'Find “elsewhere.pt”' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(app.browser.problems, []);
  });
});
