// `npm run lint` runs this: the folders of main/ import only downward (ARCHITECTURE.md).
// LAYERS lists, for each folder, the folders it may import besides itself; everything not listed
// is forbidden. The config refuses to load if the list itself has a cycle, so the folder graph of
// main/ stays acyclic as long as this passes.
const BELOW_FORMATS = ['main/formats/values', 'main/io', 'main/errors.ts'];
const FORMATS = ['main/formats', 'main/formats/torch', 'main/formats/safetensors', 'main/formats/numpy', 'main/formats/dcp', 'main/formats/deepspeed', 'main/formats/onnx', 'main/formats/pickle', 'main/formats/pickle/scan', 'main/formats/zip', ...BELOW_FORMATS];
const ENGINE = ['main/checkpoint', 'main/checkpoint/scan', 'main/inputs', 'main/convert', 'main/reshard', 'main/verify', 'main/fit', 'main/diff', ...FORMATS];

/** @type {Record<string, string[]>} folder (or file) of main/ → what it may import (shared/ is always allowed) */
const LAYERS = {
  'main/errors.ts': [],
  'main/version.ts': [],
  'main/io': ['main/errors.ts'],
  'main/formats/values': ['main/io', 'main/errors.ts'],
  'main/formats/pickle': BELOW_FORMATS,
  'main/formats/pickle/scan': ['main/formats/pickle', ...BELOW_FORMATS],
  'main/formats/zip': BELOW_FORMATS,
  'main/formats/safetensors': BELOW_FORMATS,
  // torch-zip feeds the security scan while it unpickles data.pkl (one walk of the pickle)
  'main/formats/torch': ['main/formats/pickle', 'main/formats/pickle/scan', 'main/formats/zip', ...BELOW_FORMATS],
  'main/formats/numpy': ['main/formats/safetensors', 'main/formats/zip', 'main/formats/pickle', ...BELOW_FORMATS],
  'main/formats/onnx': ['main/formats/safetensors', ...BELOW_FORMATS],
  'main/formats/dcp': ['main/formats/torch', 'main/formats/safetensors', 'main/formats/pickle', 'main/formats/zip', ...BELOW_FORMATS],
  'main/formats/deepspeed': ['main/formats/torch', 'main/formats/pickle', 'main/formats/zip', ...BELOW_FORMATS],
  'main/formats': FORMATS.filter((f) => f !== 'main/formats'),
  'main/checkpoint/scan': FORMATS,
  'main/checkpoint': ['main/checkpoint/scan', ...FORMATS],
  'main/inputs': ['main/checkpoint', ...FORMATS],
  'main/convert': ['main/inputs', 'main/checkpoint', 'main/checkpoint/scan', ...FORMATS],
  'main/reshard': ['main/convert', 'main/inputs', 'main/checkpoint', 'main/checkpoint/scan', ...FORMATS],
  'main/verify': ['main/inputs', 'main/checkpoint', ...FORMATS],
  'main/fit': ['main/convert', 'main/verify', 'main/inputs', 'main/checkpoint', ...FORMATS],
  'main/diff': ['main/verify', 'main/inputs', 'main/checkpoint', ...FORMATS],
  'main/devices': ['main/io', 'main/errors.ts'],
  'main/jobs': [...ENGINE, 'main/devices'],
  'main/service': ['main/version.ts', 'main/jobs', 'main/devices', ...ENGINE],
  'main/server': ['main/version.ts', 'main/service', 'main/jobs', 'main/devices', ...ENGINE],
  'main/electron': ['main/version.ts', 'main/server', 'main/service', 'main/jobs', 'main/devices', ...ENGINE],
  'main/cli': ['main/version.ts', 'main/server', 'main/service', 'main/jobs', 'main/devices', ...ENGINE],
};

// refuse a layering with a cycle in it
const state = new Map();
const visit = (node, trail) => {
  if (state.get(node) === 'done') return;
  if (state.get(node) === 'open') throw new Error(`.dependency-cruiser.cjs: the layers have a cycle: ${[...trail, node].join(' → ')}`);
  state.set(node, 'open');
  for (const next of LAYERS[node] ?? []) if (next !== node) visit(next, [...trail, node]);
  state.set(node, 'done');
};
for (const node of Object.keys(LAYERS)) visit(node, []);

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** a path regex that matches the files directly in a folder (not in its sub-folders), or one file */
const exactly = (p) => (p.endsWith('.ts') ? `^${esc(p)}$` : `^${esc(p)}/[^/]+$`);

module.exports = {
  forbidden: [
    ...Object.entries(LAYERS).map(([folder, allowed]) => ({
      name: `layers:${folder.replace(/^main\//, '')}`,
      comment: `${folder} may import only ${[...allowed, 'shared/'].join(', ')} (ARCHITECTURE.md)`,
      severity: 'error',
      from: { path: exactly(folder) },
      to: { path: '^main/', pathNot: [folder, ...allowed].map(exactly) },
    })),
    {
      name: 'shared-is-pure',
      comment: 'shared/ is the contract both sides use: it imports nothing from main/ or renderer/',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^(main|renderer)/' },
    },
    {
      name: 'renderer-uses-the-contract',
      comment: 'the renderer imports only shared/ (the API contract), never main/',
      severity: 'error',
      from: { path: '^renderer/' },
      to: { path: '^main/' },
    },
    {
      name: 'every-folder-has-a-layer',
      comment: 'a new folder of main/ gets its line in LAYERS',
      severity: 'error',
      from: { path: '^main/', pathNot: Object.keys(LAYERS).map(exactly) },
      to: {},
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
  },
};
