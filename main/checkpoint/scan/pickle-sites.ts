import type { PickleScan } from '../../formats/pickle/scan/scan-pickle.ts';

/**
 * Who reads a pickle of a file: `torch.load` (its weights-only verdict is the file's), another
 * loader of this file kind (`torch.jit.load`, a DCP reader, `numpy.load(allow_pickle=True)`), or
 * nobody that opens the file the usual way (`pickle.load`, joblib and hubs' loaders still would).
 */
export type Reach = 'torch.load' | 'loader' | 'unreached';

export interface PickleSite {
  /** where the pickle is, e.g. `archive/data.pkl` or `pickle 2 at byte 30` */
  where: string;
  reach: Reach;
  /** what reads it, when `reach` is `loader` or `unreached`: shown in the finding's note */
  by?: string;
  scan: PickleScan;
}

/** The pickles of one file and what the file as a whole means to torch.load. */
export interface FileSites {
  sites: PickleSite[];
  notes: string[];
  /** why torch.load(weights_only=True) refuses the file as a container, whatever its pickles hold */
  containerRefusal?: string;
  /** the torch versions `containerRefusal` holds for, when not all (1.13 reads the old tar format through its weights-only unpickler) */
  containerRefusalIn?: string[];
  /** true when no byte of the file is a pickle (safetensors, a plain npy array) */
  noPickle?: boolean;
  /** true when the bytes are no format a loader opens (not a pickle, zip, tar, safetensors or npy): not `safe`, which means torch loads it */
  unrecognised?: boolean;
  /**
   * torch versions whose torch.load reads the file without unpickling: torch 2.13 hands a path
   * ending in `.safetensors` to `safetensors.torch.load_file` (torch/serialization.py `load`).
   */
  loadsWithoutPickle?: string[];
  /**
   * torch versions whose torch.load(weights_only=True) hands a TorchScript archive to
   * torch.jit.load instead of refusing it (1.13; 2.x raises): those load it unless a pickle
   * names a global the TorchScript unpickler cannot resolve.
   */
  jitLoadsIn?: string[];
}
