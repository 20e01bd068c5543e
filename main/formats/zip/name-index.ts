/** How many folders get a numbered index; the names of any others go to the Map. */
const MAX_NUMBERED_FOLDERS = 16;

/**
 * Each record name's last entry (the one torch reads: miniz finds the last of equal names).
 * torch names its storage records `<archive>/data/0` … `<archive>/data/99999`: such a name, a
 * folder and a plain decimal number below the entry count, is indexed by folder and number in an
 * Int32Array; every other name goes to a Map. A Map of 100,000 storage names, each hashed on the
 * way in, cost more than the rest of the central directory's parse.
 */
export class NameIndex {
  /** folder (`''` or ending in `/`) → entry index by number, -1 where none; null: that folder's names are in `others` */
  private readonly folders = new Map<string, Int32Array | null>();
  private readonly others = new Map<string, number>();
  /** the entry that a later one of the same name hides first in the directory's order, or -1 */
  readonly firstShadowed: number;
  /** the folder the last lookup used, and its numbers */
  private lastFolder: string | null = null;
  private lastSlots: Int32Array | null = null;
  /** the string `findIn` was last given as a folder, while `lastFolder` and `lastSlots` are its */
  private lastWholeFolder: string | null = null;

  constructor(private readonly names: readonly { readonly name: string }[]) {
    let firstShadowed = -1;
    let numberedFolders = 0;
    let folder: string | null = null;
    let slots: Int32Array | null = null;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!.name;
      const slash = name.lastIndexOf('/');
      const n = decimalKey(name, slash + 1);
      let hidden = -1;
      if (n >= 0 && n < names.length) {
        // consecutive records share their folder: the Map is asked only when it changes
        if (folder === null || slash + 1 !== folder.length || !name.startsWith(folder)) {
          folder = name.slice(0, slash + 1);
          slots = this.folders.get(folder) ?? null;
          if (!this.folders.has(folder)) {
            slots = numberedFolders++ < MAX_NUMBERED_FOLDERS ? new Int32Array(names.length).fill(-1) : null;
            this.folders.set(folder, slots);
          }
        }
        if (slots) {
          hidden = slots[n]!;
          slots[n] = i;
        } else hidden = this.setOther(name, i);
      } else hidden = this.setOther(name, i);
      if (hidden >= 0 && (firstShadowed < 0 || hidden < firstShadowed)) firstShadowed = hidden;
    }
    this.firstShadowed = firstShadowed;
  }

  /** Records `name` at entry `i`; the entry it hides, or -1. */
  private setOther(name: string, i: number): number {
    const hidden = this.others.get(name);
    this.others.set(name, i);
    return hidden ?? -1;
  }

  /** The index of the last entry named `name`, or -1. */
  find(name: string): number {
    const slash = name.lastIndexOf('/');
    const n = decimalKey(name, slash + 1);
    if (n >= 0) {
      const slots = this.slotsOf(name, slash + 1);
      if (slots && n < slots.length) return slots[n]!;
    }
    return this.others.get(name) ?? -1;
  }

  /** `find(folder + key)` without making that name, for a key that has no `/`. */
  findIn(folder: string, key: string): number {
    const n = decimalKey(key, 0);
    if (n >= 0) {
      // a reader asks with the same folder string for each of its storages: compared by identity first, no `endsWith` or `startsWith`
      if (folder !== this.lastWholeFolder) {
        if (folder !== '' && !folder.endsWith('/')) return this.find(folder + key);
        this.slotsOf(folder, folder.length);
        this.lastWholeFolder = folder;
      }
      const slots = this.lastSlots;
      if (slots && n < slots.length) return slots[n]!;
    }
    return this.find(folder + key);
  }

  /** The numbers of the folder that is `name`'s first `length` characters. */
  private slotsOf(name: string, length: number): Int32Array | null {
    const last = this.lastFolder;
    this.lastWholeFolder = null;
    if (last === null || length !== last.length || !name.startsWith(last)) {
      this.lastFolder = name.slice(0, length);
      this.lastSlots = this.folders.get(this.lastFolder) ?? null;
    }
    return this.lastSlots;
  }
}

/** The number that `s` spells from `from` on in plain decimal (no sign, no leading zero, at most 9 digits), or -1. */
export function decimalKey(s: string, from: number): number {
  const digits = s.length - from;
  if (digits < 1 || digits > 9 || (digits > 1 && s.charCodeAt(from) === 0x30)) return -1;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}
