// Opening by path in web mode: a file path pasted into Open's path field opens the file (it used
// to say "is a file, not a folder"); a folder path still browses.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, REPO, SAMPLE_DIR, screenshot, serveAndBrowse } from './helpers.ts';

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

  it('a dropped file is found under the recent folders by name, size and modified time, else uploaded when small', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    /** drops a File with this name, size (zeros, or `base64` content) and time on the window, as a file manager would */
    const drop = async (name: string, bytes: number, modifiedMs: number, base64 = ''): Promise<void> => {
      const content = base64 ? `Uint8Array.from(atob(${JSON.stringify(base64)}), (c) => c.charCodeAt(0))` : `new Uint8Array(${bytes})`;
      const transfer = await page.evaluateHandle(
        `(() => { const dt = new DataTransfer(); dt.items.add(new File([${content}], ${JSON.stringify(name)}, { lastModified: ${modifiedMs} })); return dt; })()`,
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

    // nowhere under them and small: a copy is uploaded into the session folder and opened
    const npy = readFileSync(join(REPO, 'test', 'fixtures', 'numpy', 'dtype_f4.npy'));
    await drop('dropped-array.npy', npy.length, Date.now(), npy.toString('base64'));
    const note = page.getByRole('status').filter({ hasText: '“dropped-array.npy” is not under the recent folders; a copy was uploaded to' });
    await note.waitFor();
    assert.match(await note.innerText(), /\(files up to 32 MiB\), removed when the server stops/);
    await page.getByTestId('open-file').filter({ hasText: 'dropped-array.npy' }).waitFor();
    await page.getByRole('region', { name: 'Contents' }).getByText('NumPy .npy').waitFor();
    assert.equal(await page.getByTestId('tensor-count').textContent(), '1');

    // nowhere under them and over the bound: the file browser opens, saying why
    await drop('huge.pt', (32 << 20) + 1, Date.now());
    await page.getByRole('status').filter({ hasText: 'over 32 MiB to upload' }).waitFor();
    const dialog = page.getByRole('dialog', { name: 'Find “huge.pt”' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(app.browser.problems, []);
  });
});
