import type { LayoutKind, LoadClaims, SecurityClass, SecurityReport } from './inspect.ts';

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

/**
 * The verdict's title; a file with no pickle that torch.load does not read (an ONNX graph, a
 * numpy array) is safe because nothing in it runs, not because torch.load(weights_only=True) loads it.
 */
export function securityTitle(security: Pick<SecurityReport, 'verdict' | 'globals'>, loading: Pick<LoadClaims, 'torchLoad'> | undefined): string {
  if (security.verdict === 'safe' && !security.globals.length && loading?.torchLoad === false) return 'safe: it holds no pickle, so reading it runs no code';
  return SECURITY_TITLES[security.verdict];
}
