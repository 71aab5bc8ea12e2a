/**
 * Extended page tables (SDM Vol. 3, 29.3), kept as a 4-level radix of Maps: PML4 -> PDPT ->
 * PD -> PT, 512 entries a level, indexed by guest-physical address bits 47:39, 38:30, 29:21
 * and 20:12. Only leaf entries carry bits; the model's intermediate entries are always RWX.
 */
/** An EPT leaf entry: the host frame and the low bits (R/W/X, memory type). */
export interface EptEntry {
  mfn: number;
  bits: number;
}

/** The 4-level EPT as the model keeps it: PML4 -> PDPT -> PD -> PT, 512 entries each. */
export type EptTable = Map<number, Map<number, Map<number, Map<number, EptEntry>>>>;

export const EPT_READ = 1;
export const EPT_WRITE = 2;
export const EPT_EXECUTE = 4;
const MEMORY_TYPE_SHIFT = 3;
export const MEMORY_TYPE_WB = 6;
/** What Xen writes for ordinary guest RAM: RWX, write-back. */
export const EPT_RAM_BITS = EPT_READ | EPT_WRITE | EPT_EXECUTE | (MEMORY_TYPE_WB << MEMORY_TYPE_SHIFT);
/** Memory references of one EPT walk (one per level). */
export const EPT_WALK_REFS = 4;

/** Exit qualification bits of an EPT violation (SDM Table 27-7). */
export const QUAL_READ = 1 << 0;
export const QUAL_WRITE = 1 << 1;
export const QUAL_FETCH = 1 << 2;
const QUAL_ENTRY_SHIFT = 3;
export const QUAL_GLA_VALID = 1 << 7;
export const QUAL_FINAL_TRANSLATION = 1 << 8;

export type EptAccess = 'read' | 'write' | 'fetch';

function indices(gfn: number): [number, number, number, number] {
  return [Math.floor(gfn / 2 ** 27) & 511, Math.floor(gfn / 2 ** 18) & 511, Math.floor(gfn / 512) & 511, gfn & 511];
}

export function eptLookup(table: EptTable, gfn: number): EptEntry | undefined {
  const [a, b, c, d] = indices(gfn);
  return table.get(a)?.get(b)?.get(c)?.get(d);
}

/** Writes (or, with undefined, clears) a leaf; empty tables are freed as Xen frees them. */
export function eptSet(table: EptTable, gfn: number, entry: EptEntry | undefined): void {
  const [a, b, c, d] = indices(gfn);
  if (entry === undefined) {
    const pdpt = table.get(a);
    const pd = pdpt?.get(b);
    const pt = pd?.get(c);
    if (pt === undefined) return;
    pt.delete(d);
    if (pt.size === 0) pd!.delete(c);
    if (pd!.size === 0) pdpt!.delete(b);
    if (pdpt!.size === 0) table.delete(a);
    return;
  }
  let pdpt = table.get(a);
  if (pdpt === undefined) table.set(a, (pdpt = new Map()));
  let pd = pdpt.get(b);
  if (pd === undefined) pdpt.set(b, (pd = new Map()));
  let pt = pd.get(c);
  if (pt === undefined) pd.set(c, (pt = new Map()));
  pt.set(d, entry);
}

/** RWX = 010b or 110b (write without read) and reserved memory types are misconfigurations. */
export function isMisconfigured(bits: number): boolean {
  const rwx = bits & 7;
  const memoryType = (bits >>> MEMORY_TYPE_SHIFT) & 7;
  return rwx === EPT_WRITE || rwx === (EPT_WRITE | EPT_EXECUTE) || (rwx !== 0 && [2, 3, 7].includes(memoryType));
}

export type EptResult =
  | { kind: 'ok'; mfn: number }
  | { kind: 'violation'; qualification: number }
  | { kind: 'misconfig' };

const ACCESS_BITS: Record<EptAccess, number> = { read: QUAL_READ, write: QUAL_WRITE, fetch: QUAL_FETCH };
const NEEDED: Record<EptAccess, number> = { read: EPT_READ, write: EPT_WRITE, fetch: EPT_EXECUTE };

/**
 * Translates a guest-physical frame. `final` says whether this is the access itself (bit 8)
 * or a read of a guest paging structure; `glaValid` whether a linear address caused it.
 */
export function eptTranslate(table: EptTable, gfn: number, access: EptAccess, final: boolean, glaValid: boolean): EptResult {
  const entry = eptLookup(table, gfn);
  const bits = entry?.bits ?? 0;
  if (entry !== undefined && isMisconfigured(bits)) return { kind: 'misconfig' };
  if (entry !== undefined && (bits & NEEDED[access]) !== 0) return { kind: 'ok', mfn: entry.mfn };
  let qualification = ACCESS_BITS[access] | ((bits & 7) << QUAL_ENTRY_SHIFT);
  if (glaValid) qualification |= QUAL_GLA_VALID | (final ? QUAL_FINAL_TRANSLATION : 0);
  return { kind: 'violation', qualification };
}
