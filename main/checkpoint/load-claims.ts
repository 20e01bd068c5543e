/**
 * What loads a checkpoint in Python, per format: the claims the Checkpoint view, the Security
 * panel and `ckpt inspect` print. Each is what real torch 1.13 and 2.x do on the fixtures and the
 * real corpus (test/interop/load-claims.test.ts), not a guess from the pickle's globals alone.
 */
import type { CheckpointFormatName, InspectReport, LoadClaims } from '../../shared/inspect.ts';
import { OPCODE_NAMES } from '../formats/pickle/scan/scan-pickle.ts';
import { TORCH_2_13 } from '../formats/pickle/scan/torch-allowlists.ts';

const MAP = "map_location='cpu'";

/**
 * The opcodes torch's weights-only unpickler implements are the scan's (`TORCH_2_13.opcodes`,
 * torch/_weights_only_unpickler.py `Unpickler.load`); any other raises "Unsupported operand N".
 * FRAME (0x95, every protocol 4+ pickle) and protocol 0/1's text LONG are the usual ones missing.
 */
const WEIGHTS_ONLY_OPCODES = TORCH_2_13.opcodes;

/** The first opcode the pickle used that torch's weights-only unpickler does not implement, or null. */
export function unsupportedOpcode(opcodes: Uint8Array | undefined): string | null {
  if (!opcodes) return null;
  // FRAME first: it follows PROTO, so it is the one torch stops at (checked on every file: no array built)
  let op = refused(opcodes, 0x95) ? 0x95 : -1;
  for (let i = 0; op < 0 && i < opcodes.length; i++) if (refused(opcodes, i)) op = i;
  return op < 0 ? null : `${OPCODE_NAMES[op] ?? 'opcode'} (0x${op.toString(16)})`;
}

/** Module-level, not a closure per call: a batch asks this of every file, and V8 compiled each new closure again. */
function refused(opcodes: Uint8Array, op: number): boolean {
  return !!opcodes[op] && !WEIGHTS_ONLY_OPCODES.has(op);
}

export function loadClaims(report: Pick<InspectReport, 'file' | 'format' | 'security' | 'records'>, pickleOpcodes?: Uint8Array): LoadClaims {
  const format: CheckpointFormatName = report.format;
  switch (format) {
    case 'torchscript':
      // torch/serialization.py `load`: a TorchScript zip is handed to torch.jit.load; torch 2.x
      // first raises "Cannot use ``weights_only=True`` with TorchScript archives" (1.13 did not check).
      if (report.records['layout']?.startsWith('model.json')) {
        // torch.jit.load of the 1.0/1.1 layout: "Legacy model format is not supported on mobile."
        return {
          weightsOnly: false,
          torchLoad: false,
          how: 'torch.jit.load in the torch 1.0/1.1 that wrote it',
          why: 'a TorchScript archive in the torch 1.0/1.1 model.json layout: torch 1.13 and 2.x load it neither with torch.load nor with torch.jit.load ("Legacy model format is not supported")',
          convertible: false,
        };
      }
      return {
        weightsOnly: false,
        torchLoad: true,
        how: `torch.jit.load(f, ${MAP})`,
        why: 'a TorchScript archive: torch 2.x refuses weights_only=True for it ("Cannot use weights_only=True with TorchScript archives"); torch.jit.load runs its compiled code',
        convertible: false,
      };
    case 'safetensors': {
      // torch 2.13 torch/serialization.py `load`: a path ending in .safetensors is handed to
      // safetensors.torch.load_file; torch 1.13 reads it as a torch file and fails.
      const byName = report.file.endsWith('.safetensors');
      return {
        weightsOnly: byName,
        torchLoad: byName,
        how: "safetensors.torch.load_file(f, device='cpu')",
        why: byName ? null : 'a safetensors file without the .safetensors name: torch.load cannot read it',
        convertible: true,
      };
    }
    case 'torch-tar':
      // torch 2.x `_legacy_load`: "Cannot use ``weights_only=True`` with files saved in the legacy .tar format"
      return {
        weightsOnly: false,
        torchLoad: true,
        how: `torch.load(f, weights_only=False, ${MAP})  # runs the pickle: only for files you trust`,
        why: 'the torch 0.1–0.3 .tar format: torch 2.x refuses weights_only=True for it (torch 1.13 loaded it)',
        convertible: true,
      };
    case 'npz':
    case 'npy':
      return {
        weightsOnly: false,
        torchLoad: false,
        how: `numpy.load(f${report.security.verdict === 'safe' || report.security.globals.length === 0 ? '' : ', allow_pickle=True'})`,
        why: `a numpy ${format === 'npz' ? '.npz archive' : '.npy array'}, not a torch.save file: torch.load cannot read it`,
        convertible: true,
      };
    case 'onnx':
      return {
        weightsOnly: false,
        torchLoad: false,
        how: 'onnxruntime.InferenceSession(f)',
        why: 'an ONNX graph (torch.onnx.export), not a torch.save file: torch.load cannot read it',
        convertible: false,
      };
    case 'pickle':
      // torch/serialization.py `_legacy_load`: the first pickle must be torch's magic number.
      return {
        weightsOnly: false,
        torchLoad: false,
        how: "pickle.load(open(f, 'rb'))",
        why: 'a plain pickle, not written by torch.save: torch.load stops at "Invalid magic number; corrupt file?"',
        convertible: false,
      };
    case 'dcp':
      return {
        weightsOnly: false,
        torchLoad: false,
        how: 'torch.distributed.checkpoint.load(state_dict, checkpoint_id=folder)',
        why: 'a distributed-checkpoint folder: torch.load reads single files',
        convertible: true,
      };
    default: {
      const outside = report.security.globals.filter((g) => g.class !== 'safe').length;
      const opcode = unsupportedOpcode(pickleOpcodes);
      const why = outside
        ? `the pickle names ${outside} global${outside === 1 ? '' : 's'} outside torch's weights_only allow-list`
        : opcode
          ? `its pickle uses ${opcode}, which torch's weights-only unpickler does not implement ("Unsupported operand")`
          : null;
      return {
        weightsOnly: why === null,
        torchLoad: true,
        how:
          why === null ? `torch.load(f, weights_only=True, ${MAP})` : `torch.load(f, weights_only=False, ${MAP})  # runs the pickle: only for files you trust`,
        why,
        convertible: true,
      };
    }
  }
}
