import { dtypeByStorage } from '../../../shared/dtypes.ts';
import { PickleInput } from '../../formats/pickle/pickle-input.ts';
import { scanPickle } from '../../formats/pickle/scan/scan-pickle.ts';
import type { Sym } from '../../formats/pickle/scan/symbols.ts';
import type { TarMember } from '../../formats/torch/torch-legacy.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import type { PickleSite } from './pickle-sites.ts';

/**
 * Every pickle torch.load unpickles from one member of the old tar format, in the order
 * torch/serialization.py `_legacy_load` → `legacy_load` reads them:
 * - `storages`: a count, then per storage a `(key, location, storage_type)` header pickle followed
 *   by an int64 element count and the raw bytes (`UntypedStorage._new_with_file`), then one pickle
 *   of storage views;
 * - `tensors`: a count, then per tensor a `(key, storage_id, type)` header pickle followed by
 *   int32 ndim, 4 skipped bytes, ndim int64 sizes, ndim int64 strides and an int64 offset;
 * - `pickle` (or any other member): one pickle.
 * The raw bytes are skipped by the sizes the headers give; where a header does not say how far to
 * skip (no storage class, a size past the member), the walk stops and says so. Whatever the
 * member holds after the walk is scanned too, as bytes torch.load does not reach.
 */
export function tarMemberSites(reader: RandomAccessReader, member: TarMember, notes: string[]): PickleSite[] {
  const input = new PickleInput(reader, member.offset, member.offset + member.size);
  const at = (): number => input.pos - member.offset;
  const sites: PickleSite[] = [];
  const next = (what: string): ReturnType<typeof scanPickle> => {
    const where = `tar member ${member.name}${what ? `, ${what}` : ''}`;
    const s = scanPickle(input);
    sites.push({ where: sites.length ? `${where} at byte ${s.start - member.offset}` : where, reach: 'torch.load', scan: s });
    return s;
  };
  const count = next(member.name === 'pickle' ? '' : 'count');
  const n = count.value?.t === 'int' ? Number(count.value.v) : -1;
  if (member.name !== 'storages' && member.name !== 'tensors') return sites;
  if (count.error || n < 0) return sites;
  const stop = (why: string): PickleSite[] => {
    notes.push(`tar member ${member.name}: ${why}; the pickles after it are not walked`);
    return sites;
  };
  for (let i = 0; i < n && input.pos < input.end; i++) {
    const header = next(`${member.name === 'storages' ? 'storage' : 'tensor'} header ${i + 1}`);
    if (header.error) return sites;
    if (member.name === 'storages') {
      const size = dtypeByStorage(storageClassOf(header.value) ?? '')?.size;
      if (!size) return stop(`storage header ${i + 1} names no storage class`);
      if (input.pos + 8 > input.end) return stop(`storage ${i + 1} is cut short`);
      const numel = Buffer.from(reader.read(input.pos, 8)).readBigInt64LE(0);
      const bytesEnd = input.pos + 8 + Number(numel) * size;
      if (numel < 0n || bytesEnd > input.end) return stop(`storage ${i + 1} runs past the member`);
      input.pos = bytesEnd;
    } else {
      if (input.pos + 8 > input.end) return stop(`tensor ${i + 1} is cut short`);
      const ndim = Buffer.from(reader.read(input.pos, 4)).readInt32LE(0);
      const bytesEnd = input.pos + 8 + 16 * ndim + 8;
      if (ndim < 0 || bytesEnd > input.end) return stop(`tensor ${i + 1} has a bad dimension count`);
      input.pos = bytesEnd;
    }
  }
  if (member.name === 'storages' && input.pos < input.end) next('storage views');
  if (input.pos < input.end) {
    const from = at();
    const rest = scanPickle(input);
    if (rest.findings.length)
      sites.push({
        where: `tar member ${member.name}, bytes after its pickles at byte ${from}`,
        reach: 'unreached',
        by: 'a pickle.load of the member',
        scan: rest,
      });
  }
  return sites;
}

/** The storage class of a storages header `(key, location, storage_type)`, e.g. `FloatStorage`. */
function storageClassOf(v: Sym | undefined): string | undefined {
  const type = v?.t === 'tuple' ? v.items[2] : undefined;
  return type?.t === 'global' && type.module === 'torch' ? type.name : undefined;
}
