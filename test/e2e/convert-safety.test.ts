// The Convert form must not overwrite the wrong file. The newcomer's scenario: convert dp.pt to
// out/dp-cpu.pt, tick Overwrite, open the training checkpoint (and Devices → Apply in Convert):
// the output must follow the new source and Overwrite must be taken back; replacing a file
// names what it holds now. A bad regex is shown at its field and the preview says it is paused.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, openByAddress, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();
const TRAIN = join(SAMPLE_DIR, 'checkpoint.pth.tar');

describe('convert form safety', { skip: skip ?? false }, () => {
  let dir: string;
  let empty: string;
  before(() => {
    dir = tempDir('convert-safety');
    empty = tempDir('no-smi');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });
  // No nvidia-smi on PATH: the Devices view proposes "Convert to CPU" for cuda-tagged files.
  const app = serveAndBrowse({ env: () => ({ PATH: empty }), width: 1024, height: 700 });

  it('a stale output path and Overwrite do not survive opening another file', { timeout: 120_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Convert');
    const preview = page.getByTestId('preview');
    const out = join(dir, 'dp-cpu.pt');
    await page.getByTestId('output-path').fill(out);
    await preview.getByText(out, { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Run conversion' }).click();
    await page.getByTestId('conversion-result').waitFor({ timeout: 60_000 });

    // Running again would replace the file just written: the form says what it holds now.
    const replaces = page.getByTestId('replaces');
    await replaces.waitFor();
    assert.match(await replaces.innerText(), /dp-cpu\.pt exists: it holds a CPU state dict: 16 tensors on cpu \(19\.\d+ KiB, modified .+\)\./);
    await page.getByRole('checkbox', { name: 'Overwrite it' }).check();

    // Another source: the output goes back to the default beside it, and Overwrite is gone.
    await openByAddress(page, 'convert', TRAIN);
    await page
      .getByTestId('output-note')
      .filter({ hasText: `Output reset to the default for checkpoint.pth.tar: ${out} was chosen for dp.pt.` })
      .waitFor();
    assert.equal(await page.getByTestId('output-path').inputValue(), '');
    await preview.getByText(join(SAMPLE_DIR, 'checkpoint.cpu.pth.tar'), { exact: true }).waitFor();
    assert.equal(await page.getByTestId('replaces').count(), 0);
    await screenshot(page, 'convert-output-followed-1024');

    // Choosing the old file again names what it holds, and needs Overwrite again.
    await page.getByTestId('output-path').fill(out);
    await replaces.filter({ hasText: /holds a CPU state dict: 16 tensors/ }).waitFor();
    const overwrite = page.getByRole('checkbox', { name: 'Overwrite it' });
    assert.equal(await overwrite.isChecked(), false);
    assert.equal(await page.getByRole('button', { name: 'Run conversion' }).isDisabled(), true);
    await overwrite.check();
    // Any change of the output takes it back.
    await page.getByTestId('output-path').fill(join(dir, 'dp-cpu2.pt'));
    await preview.getByText(join(dir, 'dp-cpu2.pt'), { exact: true }).waitFor();
    await page.getByTestId('output-path').fill(out);
    await replaces.waitFor();
    assert.equal(await page.getByRole('checkbox', { name: 'Overwrite it' }).isChecked(), false);
    assert.deepEqual(app.browser.problems, []);
  });

  it('Devices → Apply in Convert on another file lands with the default output and Overwrite off', { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await openByAddress(page, 'convert', join(SAMPLE_DIR, 'dp.pt'));
    await page.getByTestId('output-path').fill(join(dir, 'dp-cpu.pt'));
    await page.getByRole('checkbox', { name: 'Overwrite it' }).check();
    await openByAddress(page, 'devices', join(SAMPLE_DIR, 'cuda1.pt'));
    const fix = page.getByTestId('device-fix');
    await fix.getByRole('button', { name: 'Apply in Convert' }).click();
    await page.getByRole('status').filter({ hasText: 'Applied from Devices' }).waitFor();
    assert.equal(await page.getByTestId('output-path').inputValue(), '');
    await page.getByTestId('preview').getByText(join(SAMPLE_DIR, 'cuda1.cpu.pt'), { exact: true }).waitFor();
    assert.equal(await page.getByRole('checkbox', { name: /Overwrite/ }).count(), 0);
    assert.deepEqual(app.browser.problems, []);
  });

  it('a bad regex is marked at its field, the preview pauses, and clearing it keeps the section open', { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    await showView(page, 'Convert');
    const rules = page.locator('details.rules');
    if (!((await rules.getAttribute('open')) !== null)) await page.getByText('Custom rules', { exact: true }).click();
    const include = page.getByRole('textbox', { name: 'Include' });
    await include.fill('conv(');
    assert.equal(await include.getAttribute('aria-invalid'), 'true');
    const error = page.locator('#rule-include-error');
    assert.match(await error.innerText(), /'conv\(' is not a valid regular expression/);
    assert.equal(await include.getAttribute('aria-describedby'), 'rule-include-error');
    await page.getByTestId('preview-paused').waitFor();
    assert.equal(await page.getByTestId('preview').count(), 0, 'no stale preview while a rule is invalid');
    assert.equal(await page.getByRole('button', { name: 'Run conversion' }).isDisabled(), true);
    await screenshot(page, 'convert-bad-regex-1024');
    // Clearing the last rule character by character keeps the section open.
    for (let i = 0; i < 'conv('.length; i++) await include.press('Backspace');
    assert.equal(await include.inputValue(), '');
    assert.notEqual(await rules.getAttribute('open'), null);
    assert.equal(await include.getAttribute('aria-invalid'), 'false');
    await page.getByTestId('preview').waitFor();
    assert.deepEqual(app.browser.problems, []);
  });
});
