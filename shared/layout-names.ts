import type { LayoutKind, SecurityClass } from './inspect.ts';

export const LAYOUT_TITLES: Record<LayoutKind, string> = {
  cpu: 'CPU',
  'single-gpu': 'single GPU',
  dp: 'DataParallel',
  ddp: 'DistributedDataParallel rank',
  mixed: 'mixed devices',
};

export const SECURITY_TITLES: Record<SecurityClass, string> = {
  safe: 'safe: torch.load(weights_only=True) loads it (or it holds no pickle)',
  benign: 'benign: runs no foreign code, but torch.load(weights_only=True) refuses it',
  'unknown-class': 'needs classes: loading imports the classes named below',
  dangerous: 'DANGEROUS: unpickling this file with torch.load would run the code named below',
};
