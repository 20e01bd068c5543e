// The Convert result's "Load it with" line for a training checkpoint names the state dict inside
// the container (`sd['model']`), as torch needs it (test/interop/load-hint.test.ts runs it in torch).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, openByAddress, SAMPLE_DIR, serveAndBrowse, tempDir } from './helpers.ts';

const skip = browserSkipReason();

describe('the load hint after converting a training checkpoint', { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = tempDir('load-hint');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const app = serveAndBrowse({ width: 1024, height: 700 });

  it("says model.load_state_dict(sd['model']), not sd", { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await openByAddress(page, 'convert', join(SAMPLE_DIR, 'checkpoint.pth.tar'));
    const out = join(dir, 'trained-cpu.pt');
    await page.getByTestId('output-path').fill(out);
    await page.getByTestId('preview').getByText(out, { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Run conversion' }).click();
    const result = page.getByTestId('conversion-result');
    await result.waitFor({ timeout: 60_000 });
    assert.equal(await result.getByTestId('loads-with').innerText(), "torch.load(f) with no map_location, then model.load_state_dict(sd['model'])");
    assert.deepEqual(app.browser.problems, []);
  });
});
