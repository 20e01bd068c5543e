// The Verify view with the "Python model" source, in a real browser against the real backend: the
// sample's own model file (digits_model.py) found beside the open checkpoint, the converted sample
// run in the user's torch (the first python on PATH with torch) against dp.pt: PASS with torch's
// accuracy; the interpreter and model class are remembered for the workspace across a reload.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, convertSampleToCpu, SAMPLE_DIR, serveAndBrowse, showView, tempDir } from './helpers.ts';

const skip = browserSkipReason();

describe('verify view, Python model', { skip: skip ?? false }, () => {
  let dir: string;
  let converted: string;
  before(() => {
    dir = tempDir('verify-python');
    converted = convertSampleToCpu(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ height: 1000 });

  it("runs the converted sample in the user's torch against dp.pt: PASS, torch's accuracy, and remembers the class", { timeout: 180_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Verify');
    await page.getByRole('radio', { name: 'Python model' }).check();
    // the one .py beside the open checkpoint is the model's file
    const modelClass = page.getByTestId('verify-model-class');
    await waitFor(async () => (await modelClass.inputValue()) === join(SAMPLE_DIR, 'digits_model.py'));
    await modelClass.fill(`${join(SAMPLE_DIR, 'digits_model.py')}:DigitsCNN`);
    await page.getByTestId('verify-converted').fill(converted);
    await page.getByTestId('verify-device').selectOption('cpu');
    await page.getByRole('button', { name: 'Run verification' }).click();

    const verdict = page.getByTestId('verify-verdict');
    await verdict.waitFor({ timeout: 150_000 });
    assert.equal(await verdict.getAttribute('data-verdict'), 'PASS', await page.getByTestId('verdict-reasons').innerText());
    assert.match(await page.getByTestId('verdict-reasons').innerText(), /bit-identical to the source checkpoint on all 360 samples/);
    assert.deepEqual(await page.getByTestId('accuracy-chart').getByTestId('accuracy-top1').allInnerTexts(), ['98.89%', '98.89%']);
    const run = await page.getByTestId('python-run').innerText();
    assert.match(run, /\(PATH; python \S+, torch \S+; start-up/);
    assert.match(run, /digits_model\.py:DigitsCNN[\s\S]*against: 16 keys, module\. removed/);
    assert.equal(await page.getByRole('region', { name: "Binding of the graph's weights" }).count(), 0);

    // a reload of the same workspace brings the Python source back
    await page.reload();
    await showView(page, 'Verify');
    await waitFor(
      async () =>
        (await page.getByTestId('verify-model-class').count()) === 1 &&
        (await page.getByTestId('verify-model-class').inputValue()) === `${join(SAMPLE_DIR, 'digits_model.py')}:DigitsCNN`,
    );
    assert.equal(await page.getByRole('radio', { name: 'Python model' }).isChecked(), true);
    assert.deepEqual(app.browser.problems, []);
  });
});

async function waitFor(ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) assert.fail('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
