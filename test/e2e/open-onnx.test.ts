// An ONNX file opens in the Checkpoint view (it used to be "not a PyTorch checkpoint (starts with
// 08 07 12…)"): its initializers by name, shape and dtype in the key tree, and Verify one click away
// with the file as its graph.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, openByAddress, SAMPLE_DIR, screenshot, serveAndBrowse } from './helpers.ts';

const skip = browserSkipReason();

describe('an ONNX file in the Checkpoint view', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ width: 1024, height: 700 });

  it("shows the graph's initializers and offers Verify with it as the graph", { timeout: 60_000 }, async () => {
    const { page } = app.browser;
    const onnx = join(SAMPLE_DIR, 'model.onnx');
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await openByAddress(page, 'checkpoint', onnx);
    const contents = page.getByRole('region', { name: 'Contents' });
    await contents.getByText('ONNX', { exact: true }).waitFor();
    assert.equal(await page.getByTestId('tensor-count').textContent(), '6');
    const tree = page.getByTestId('key-tree');
    // torch 1.13's export keeps fc's names; the folded convs get the exporter's onnx::Conv_N names
    const fc = tree.locator('[data-key="fc.weight"]');
    await fc.waitFor();
    assert.match((await fc.textContent()) ?? '', /float32\s*\[10, 256\]/);
    await tree.locator('[data-key="onnx::Conv_27"]').waitFor();
    const graph = page.getByTestId('onnx-graph');
    assert.match((await graph.textContent()) ?? '', /6 initializers .* and 7 nodes/);
    await page.getByTestId('loads-here').getByText('onnxruntime.InferenceSession(f)').waitFor();
    // nothing in it runs, and "loads" is not claimed of torch.load
    assert.equal(await page.getByTestId('loads-here').getAttribute('data-loads'), 'yes');
    await page.getByTestId('security').getByText('safe: it holds no pickle, so reading it runs no code').waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
    await screenshot(page, 'checkpoint-onnx-1024');

    await graph.getByRole('button', { name: 'Verify a checkpoint with this graph' }).click();
    const model = page.getByTestId('verify-model');
    await model.waitFor();
    for (let i = 0; i < 100 && (await model.inputValue()) !== onnx; i++) await page.waitForTimeout(100);
    assert.equal(await model.inputValue(), onnx);
    // the graph is not taken for the checkpoint to verify
    assert.notEqual(await page.getByTestId('verify-source').inputValue(), onnx);
    assert.deepEqual(app.browser.problems, []);
  });
});
