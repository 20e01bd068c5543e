import type { LayoutKind, SecurityClass } from './inspect.ts';

export const LAYOUT_TITLES: Record<LayoutKind, string> = {
  cpu: 'CPU',
  'single-gpu': 'single GPU',
  dp: 'DataParallel',
  ddp: 'DistributedDataParallel rank',
  mixed: 'mixed devices',
};

export const SECURITY_TITLES: Record<SecurityClass, string> = {
  safe: 'safe: only what torch.load(weights_only=True) allows',
  benign: 'benign: numpy arrays or scalars besides torch data',
  'unknown-class': 'needs classes: loading imports the classes named below',
  dangerous: 'DANGEROUS: unpickling this file with torch.load would run the code named below',
};
