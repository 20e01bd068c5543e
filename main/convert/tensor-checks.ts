import type { TensorCheck } from '../../shared/convert.ts';
import type { PathKey, TensorAt } from '../checkpoint/tree.ts';

/** Two hex digits of each byte value. */
const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A CRC-32 as the report writes it (8 hex digits; a 500,000-check report writes one per check). */
export const hex = (n: number): string =>
  n >>> 0 === n ? BYTE_HEX[n >>> 24]! + BYTE_HEX[(n >>> 16) & 255]! + BYTE_HEX[(n >>> 8) & 255]! + BYTE_HEX[n & 255]! : n.toString(16).padStart(8, '0');

/** Flags of one check (also the packed form's, packed-report.ts). */
export const CRC_READ = 1;
export const FAILED = 2;

/**
 * The read-back's per-tensor results (`TensorCheck` of the report) kept in columns: the planned
 * tensors themselves (path, dtype, shape), a device id, the CRC-32 read back and a flag byte per
 * tensor, the few problems by index. A check passed costs 7 bytes instead of an object, a hex
 * string and arrays; `at(i)` builds the `TensorCheck` when something reads it (`--json`, the
 * app's list, through `packChecks`), and the path is the planned one: a check's `path` and
 * `sourcePath` are the same array.
 */
export class TensorChecks {
  readonly length: number;
  private readonly crcs: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly deviceIds: Uint16Array;
  readonly devices: string[] = [];
  private readonly deviceIndex = new Map<string, number>();
  private readonly problems = new Map<number, string>();

  constructor(readonly planned: readonly TensorAt[]) {
    this.length = planned.length;
    this.crcs = new Uint32Array(this.length);
    this.flags = new Uint8Array(this.length);
    this.deviceIds = new Uint16Array(this.length);
  }

  /** Sets the device the check expects for tensor i. */
  setDevice(i: number, device: string): void {
    let id = this.deviceIndex.get(device);
    if (id === undefined) {
      id = this.devices.push(device) - 1;
      if (id > 0xffff) throw new Error('more than 65,536 devices');
      this.deviceIndex.set(device, id);
    }
    this.deviceIds[i] = id;
  }

  device(i: number): string {
    return this.devices[this.deviceIds[i]!]!;
  }

  /** The CRC-32 of tensor i's storage as read back. */
  setCrc(i: number, crc: number): void {
    this.crcs[i] = crc;
    this.flags[i]! |= CRC_READ;
  }

  /** The CRC-32 read back, or null when none was. */
  crc(i: number): number | null {
    return this.flags[i]! & CRC_READ ? this.crcs[i]! : null;
  }

  fail(i: number, problem: string): void {
    this.flags[i]! |= FAILED;
    this.problems.set(i, problem);
  }

  ok(i: number): boolean {
    return !(this.flags[i]! & FAILED);
  }

  problem(i: number): string | undefined {
    return this.problems.get(i);
  }

  path(i: number): PathKey[] {
    return this.planned[i]!.path;
  }

  /** Check i as the report states it (fields in the order the report has always written them). */
  at(i: number): TensorCheck {
    const { path, tensor } = this.planned[i]!;
    const crc = this.crc(i);
    const check: TensorCheck = {
      path,
      sourcePath: path,
      dtype: tensor.dtype.name,
      shape: tensor.shape,
      device: this.device(i),
      crc32: crc === null ? '' : hex(crc),
      ok: this.ok(i),
    };
    const problem = this.problems.get(i);
    if (problem !== undefined) check.problem = problem;
    return check;
  }

  toArray(): TensorCheck[] {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }

  /** As the report's `checks` (a report made in this thread and printed as JSON, e.g. `convert --fit --json`). */
  toJSON(): TensorCheck[] {
    return this.toArray();
  }

  /** The columns for another thread (`packChecks`): the planned tensors are not sent. */
  columns(): { crcs: Uint32Array; flags: Uint8Array; deviceIds: Uint16Array; devices: string[]; problems: Map<number, string> } {
    return { crcs: this.crcs, flags: this.flags, deviceIds: this.deviceIds, devices: this.devices, problems: new Map(this.problems) };
  }
}
