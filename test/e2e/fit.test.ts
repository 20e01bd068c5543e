// "Fit to model…" in the Convert view, in a real browser against the real backend: the sample's
// dp.pt fitted to its own cpu.pt (torch's complaint, the 'module.' rule, the before → after
// table), then a paste that is not torch's error (one line saying so).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { browserSkipReason, SAMPLE_DIR, serveAndBrowse, showView } from './helpers.ts';

const skip = browserSkipReason();

describe('fit to model', { skip: skip ?? false }, () => {
  const app = serveAndBrowse({ height: 1100 });

  it("shows torch's complaint, the rule and the key table; a bad paste is one line", { timeout: 90_000 }, async () => {
    const { page } = app.browser;
    await page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict').waitFor();
    await showView(page, 'Convert');
    const panel = page.getByRole('region', { name: 'Fit to model' });
    await panel.getByRole('button', { name: 'Show' }).click();
    await panel.getByTestId('fit-target').fill(join(SAMPLE_DIR, 'cpu.pt'));
    await panel.getByRole('button', { name: 'Fit', exact: true }).click();
    const result = panel.getByTestId('fit-result');
    await result.waitFor();
    assert.equal(await result.getAttribute('data-fits'), 'true');
    assert.match(await panel.getByTestId('fit-before').innerText(), /^Error\(s\) in loading state_dict for the model:\s+Missing key\(s\) in state_dict: "/);
    assert.match(await panel.getByTestId('fit-rules').innerText(), /remove the wrapper prefix 'module\.' from \d+ keys/);
    assert.equal(await panel.getByTestId('fit-after').innerText(), 'Loads with strict=True.');
    const rows = panel.getByTestId('fit-row');
    assert.ok((await rows.count()) > 0);
    const first = await rows.first().locator('td').allInnerTexts();
    assert.equal(first[0], `module.${first[1]}`);

    await panel.getByRole('radio', { name: "paste torch's error" }).check();
    await panel.getByTestId('fit-paste').fill('this is not what torch printed');
    await panel.getByRole('button', { name: 'Fit', exact: true }).click();
    assert.match(await panel.getByTestId('fit-error').innerText(), /line 1 is neither torch's load_state_dict error nor 'key shape'/);
  });
});
