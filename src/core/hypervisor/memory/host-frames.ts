/**
 * Host physical memory as hardware and Xen's own code touch it: frames by number, in the
 * bytes they hold (ciphertext under SMM, plaintext in Xen's own frames), an absent frame
 * reading as zeros. The IOMMU walks its tables here; Xen writes its IOMMU tables here.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN } from '../../../events/schema.ts';
import type { PhysicalMemory } from '../../hardware/iommu/index.ts';
import { PAGE_SIZE } from '../config.ts';
import type { HostState } from '../state.ts';

/**
 * A view of each page's bytes, made once: the table oracle reads every leaf of a device's
 * IOMMU tables at each DMA, and a DataView per word was a tenth of a recording's time. A
 * view reads the bytes as they are now, so a page written in place needs no new one.
 */
const pageViews = new WeakMap<Uint8Array, DataView>();

function pageWord(state: HostState, hpa: number): bigint {
  const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
  if (page === undefined) return 0n;
  let view = pageViews.get(page.bytes);
  if (view === undefined) pageViews.set(page.bytes, (view = new DataView(page.bytes.buffer, page.bytes.byteOffset, page.bytes.byteLength)));
  return view.getBigUint64(hpa % PAGE_SIZE, true);
}

/**
 * Host memory as the unit reads it: the machine's frames, an absent frame reading as zeros,
 * anything at or beyond the last frame failing (a "failed to access" fault).
 */
export function hostPhysicalMemory(state: HostState): PhysicalMemory {
  const limit = state.config.frames * PAGE_SIZE;
  return {
    read64(hpa: number): bigint | undefined {
      if (!(hpa >= 0 && hpa + 8 <= limit)) return undefined;
      return pageWord(state, hpa);
    },
  };
}

export function inMemory(state: HostState, hpa: number, length: number): boolean {
  return hpa >= 0 && hpa + length <= state.config.frames * PAGE_SIZE;
}

/** The bytes of a frame as stored (absent: zeros). */
export function storedBytes(state: HostState, hpa: number, length: number): Uint8Array {
  const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
  const offset = hpa % PAGE_SIZE;
  return page === undefined ? new Uint8Array(length) : page.bytes.slice(offset, offset + length);
}

/**
 * Writes 64-bit words ([hpa, low 32, high 32] triples) into Xen's own frames, in plaintext.
 * Pages are replaced, never changed in place (snapshots share them): each page touched is
 * copied once per call, however many of its words change.
 */
export function writeXenWords(state: HostState, words: readonly number[]): void {
  const copies = new Map<number, DataView>();
  for (let i = 0; i + 2 < words.length; i += 3) {
    const hpa = words[i];
    const mfn = Math.floor(hpa / PAGE_SIZE);
    const offset = hpa % PAGE_SIZE;
    assert(offset % 8 === 0, () => `table word at 0x${hpa.toString(16)} is not 8-byte aligned`);
    let view = copies.get(mfn);
    if (view === undefined) {
      const page = state.memory.get(mfn);
      const bytes = page ? new Uint8Array(page.bytes) : new Uint8Array(PAGE_SIZE);
      state.memory.set(mfn, { bytes, writer: NO_DOMAIN });
      copies.set(mfn, (view = new DataView(bytes.buffer)));
    }
    view.setUint32(offset, words[i + 1] >>> 0, true);
    view.setUint32(offset + 4, words[i + 2] >>> 0, true);
  }
}

