// "Fit to model…" in the Convert view, in a real browser against the real backend: the sample's
// dp.pt fitted to its own cpu.pt (torch's complaint, the 'module.' rule, the before → after
// table), then a paste that is not torch's error (one line saying so); then the ambiguous case
// torch 1.13 made (proj could be query or key): two rows edited, Check, Run, and the written file
// loaded with strict=True into the real target model by torch 1.13 (check_fit.py).
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tensorKeys } from '../helpers/tensor-keys.ts';
import { runPython } from '../interop/helpers.ts';
import { browserSkipReason, openByAddress, REPO, SAMPLE_DIR, screenshot, serveAndBrowse, showView, tempDir, torchSkipReason } from './helpers.ts';

const FIT = join(REPO, 'test', 'fixtures', 'fit');

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
    const from = await rows.first().locator('td').first().innerText();
    assert.equal(from, `module.${await rows.first().getByRole('combobox').inputValue()}`);

    await panel.getByRole('radio', { name: "paste torch's error" }).check();
    await panel.getByTestId('fit-paste').fill('this is not what torch printed');
    await panel.getByRole('button', { name: 'Fit', exact: true }).click();
    assert.match(await panel.getByTestId('fit-error').innerText(), /line 1 is neither torch's load_state_dict error nor 'key shape'/);
  });

  const dir = tempDir('fit');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('edits the ambiguous rows, checks them, writes a verified file that torch 1.13 loads with strict=True', { timeout: 120_000 }, async () => {
    const { page } = app.browser;
    const source = join(FIT, 'projv1.pt');
    const target = join(FIT, 'projv2_init.pt');
    await openByAddress(page, 'convert', source);
    const panel = page.getByRole('region', { name: 'Fit to model' });
    const toggle = panel.locator('.block-head button');
    if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
    await panel.getByRole('radio', { name: 'a file' }).check();
    await panel.getByTestId('fit-target').fill(target);
    await panel.getByRole('button', { name: 'Fit', exact: true }).click();
    await panel.locator('[data-testid="fit-result"][data-fits="false"]').waitFor();
    assert.match(await panel.getByTestId('fit-ask').innerText(), /proj could be any of query, key/);
    assert.equal(await panel.getByTestId('fit-write').count(), 0, 'nothing to write while it asks');

    // the user says which: proj is query
    for (const [from, to] of [
      ['proj.weight', 'query.weight'],
      ['proj.bias', 'query.bias'],
    ] as const) {
      const box = panel.getByRole('combobox', { name: `Model key for ${from}` });
      await box.fill(to);
      await box.press('Enter');
    }
    await panel.getByTestId('fit-check').click();
    await panel.locator('[data-testid="fit-result"][data-fits="true"]').waitFor();
    assert.equal(await panel.getByTestId('fit-after').innerText(), 'Loads with strict=True.');
    assert.match(await panel.getByTestId('fit-rules').innerText(), /your edits: proj\.weight → query\.weight, proj\.bias → query\.bias/);

    await screenshot(page, 'fit-edited');
    const out = join(dir, 'projv2-fitted.pt');
    await panel.getByTestId('fit-output').fill(out);
    await panel.getByRole('button', { name: 'Run fit' }).click();
    const written = panel.getByTestId('fit-written');
    await written.waitFor({ timeout: 60_000 });
    assert.equal(await written.getAttribute('data-verified'), 'true');
    assert.equal(await written.getAttribute('data-output'), out);
    assert.ok(existsSync(out));
    assert.deepEqual(tensorKeys(out), ['query.weight', 'query.bias', 'key.weight', 'key.bias', 'out.weight', 'out.bias']);
    const skipTorch = torchSkipReason();
    if (skipTorch) return;
    const res = runPython<{ results: { id: string; errors: string[] }[] }>('check_fit.py', {
      fixtures_dir: join(REPO, 'test', 'fixtures'),
      checks: [
        {
          id: 'edited',
          output: out,
          model: 'ProjV2',
          kwargs: {},
          strict: true,
          source,
          under: [],
          mapping: { 'query.weight': 'proj.weight', 'query.bias': 'proj.bias', 'out.weight': 'out.weight', 'out.bias': 'out.bias' },
          filled: { 'key.weight': target, 'key.bias': target },
          expect_missing: [],
        },
      ],
    });
    assert.deepEqual(res.results, [{ id: 'edited', errors: [] }]);
  });
});
