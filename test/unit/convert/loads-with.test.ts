// The "load it" line a conversion prints: the preset's recipe, reaching into the container, and
// weights_only=False where --keep-objects kept what torch.load's weights-only default refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadsWithFor } from '../../../shared/convert.ts';
import { parsePreset, type Preset } from '../../../shared/presets.ts';

const plan = (preset: string, path: (string | number)[] = []) => ({
  rules: { preset: parsePreset(preset) as Preset } as never,
  stateDicts: [{ kind: 'state-dict' as const, path }],
});

test('the preset line reaches into the container holding the state dict', () => {
  assert.equal(loadsWithFor(plan('cpu', ['model'])), "torch.load(f) with no map_location, then model.load_state_dict(sd['model'])");
  assert.equal(loadsWithFor(plan('gpu:2')), "model.to('cuda:2'); model.load_state_dict(torch.load(f))");
});

test('with kept objects, every torch.load of the line says weights_only=False', () => {
  assert.equal(loadsWithFor(plan('cpu', ['model']), true), "torch.load(f, weights_only=False) with no map_location, then model.load_state_dict(sd['model'])");
  assert.equal(loadsWithFor(plan('gpu:2'), true), "model.to('cuda:2'); model.load_state_dict(torch.load(f, weights_only=False))");
  assert.equal(loadsWithFor(plan('dp'), true), 'nn.DataParallel(model).load_state_dict(sd, strict=True), with sd = torch.load(f, weights_only=False)');
});
