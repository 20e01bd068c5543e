// The Verify view filled in from the open checkpoint's folder, in a real browser against the real
// backend: a folder with a graph and an MNIST idx folder beside the checkpoint gets both; a folder
// with the checkpoint alone lists what is missing as a hint, red only once the user types.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, openByAddress, REPO, SAMPLE_DIR, serveAndBrowse, showView, tempDir, waitForValue } from './helpers.ts';

const skip = browserSkipReason();

describe('verify view defaults', { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = tempDir('verify-defaults');
    for (const w of ['with-mnist', 'alone']) mkdirSync(join(dir, w));
    copyFileSync(join(SAMPLE_DIR, 'dp.pt'), join(dir, 'with-mnist', 'dp.pt'));
    copyFileSync(join(SAMPLE_DIR, 'model.onnx'), join(dir, 'with-mnist', 'model.onnx'));
    cpSync(join(REPO, 'test', 'fixtures', 'verify', 'mnist'), join(dir, 'with-mnist', 'mnist'), { recursive: true });
    copyFileSync(join(SAMPLE_DIR, 'cpu.pt'), join(dir, 'alone', 'cpu.pt'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse();

  it('finds the graph and an idx test-set folder beside the checkpoint', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await openByAddress(page, 'verify', join(dir, 'with-mnist', 'dp.pt'));
    await showView(page, 'Verify');
    const ws = join(dir, 'with-mnist');
    await waitForValue(() => page.getByTestId('verify-data').inputValue(), join(ws, 'mnist'));
    assert.equal(await page.getByTestId('verify-model').inputValue(), join(ws, 'model.onnx'));
    assert.equal(await page.getByTestId('verify-source').inputValue(), join(ws, 'dp.pt'));
    assert.equal(await page.getByTestId('verify-problems').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Run verification' }).isDisabled(), false);
  });

  it('a checkpoint alone: what is missing is a hint, not a red error, until the user types', { timeout: 30_000 }, async () => {
    const { page } = app.browser;
    await openByAddress(page, 'verify', join(dir, 'alone', 'cpu.pt'));
    await waitForValue(() => page.getByTestId('verify-source').inputValue(), join(dir, 'alone', 'cpu.pt'));
    await waitForValue(() => page.getByTestId('verify-model').inputValue(), '');
    const problems = page.getByTestId('verify-problems');
    assert.match(await problems.innerText(), /Choose the ONNX graph[\s\S]*Choose a test set/);
    assert.equal(await problems.getAttribute('role'), null, 'not an alert');
    assert.equal(await page.getByRole('alert').count(), 0);
    // its text is the dim text colour, not the danger red
    const colours = (await page.evaluate(
      `(() => { const probe = (v) => { const s = document.createElement('span'); s.style.color = 'var(' + v + ')'; document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; };
        return [getComputedStyle(document.querySelector('[data-testid="verify-problems"]')).color, probe('--text-dim'), probe('--danger')]; })()`,
    )) as [string, string, string];
    assert.equal(colours[0], colours[1]);
    assert.notEqual(colours[0], colours[2]);
    assert.equal(await page.getByRole('button', { name: 'Run verification' }).isDisabled(), true);

    await page.getByTestId('verify-model').fill('model.onnx');
    await page.getByRole('alert').filter({ hasText: 'The graph needs an absolute path.' }).waitFor();
    // opening another file cancels the requests still running for the one before (409: cancelled)
    assert.deepEqual(
      app.browser.problems.filter((p) => !p.includes('409 (Conflict)')),
      [],
    );
  });
});
