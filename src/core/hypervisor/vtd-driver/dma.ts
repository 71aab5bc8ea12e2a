/**
 * Device DMA through the VT-d unit, as the machine runs it: one dma.request per 4 KiB page
 * crossed, translated by the unit when remapping is on (the IOTLB and the tables), SMM
 * decrypting or encrypting with the key of the IOMMU domain's guest. A write into the
 * interrupt window (0xFEEx_xxxx) is an interrupt request instead.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId, type EventOf } from '../../../events/schema.ts';
import { VTD_MSI_ADDRESS_BASE, vtdTranslate } from '../../hardware/iommu/index.ts';
import { PAGE_SIZE } from '../config.ts';
import { writeFrameWithKey } from '../memory/guest-memory.ts';
import { hostPhysicalMemory, inMemory, storedBytes } from '../memory/host-frames.ts';
import { decryptLines, ensureKey, lineSpan } from '../memory/smm.ts';
import type { Host, HostState } from '../state.ts';
import { interruptRequest } from './interrupt-remapping.ts';
import { applyVtdEffects, decodeVtdEffects, encodeVtdEffects } from './vtd-op.ts';

/** Interrupt requests are DMA writes into 0xFEE0_0000..0xFEEF_FFFF. */
const INTERRUPT_WINDOW_END = VTD_MSI_ADDRESS_BASE + 0x10_0000;

interface DmaPiece {
  iova: number;
  /** Where the piece starts in the transfer. */
  at: number;
  length: number;
}

/** Splits a transfer at 4 KiB boundaries: the unit translates one page at a time. */
function dmaPieces(iova: number, length: number): DmaPiece[] {
  assert(Number.isSafeInteger(iova) && iova >= 0 && Number.isInteger(length) && length >= 0, () => `DMA of ${length} bytes at ${iova}`);
  const pieces: DmaPiece[] = [];
  for (let at = 0; at < length;) {
    const n = Math.min(length - at, PAGE_SIZE - ((iova + at) % PAGE_SIZE));
    pieces.push({ iova: iova + at, at, length: n });
    at += n;
  }
  return pieces;
}

/** The domain a device belongs to: Xen's assignment, else the NIC VF's, else none. */
function deviceDomain(state: HostState, sid: number): DomainId {
  return state.io.xenVtd.devices.get(sid) ?? state.io.vfs.find((vf) => vf.bdf === sid)?.dom ?? NO_DOMAIN;
}

/**
 * SMM tags a remapped DMA with the IOMMU domain's guest and decrypts with that guest's key:
 * the device sees the plaintext its own VM stored, and ciphertext of any other.
 */
function taggedRead(host: Host, dom: DomainId, hpa: number, length: number): Uint8Array {
  const mfn = Math.floor(hpa / PAGE_SIZE);
  const page = host.state.memory.get(mfn);
  if (host.state.profile === 'vanilla' || page === undefined) return storedBytes(host.state, hpa, length);
  const offset = hpa % PAGE_SIZE;
  const span = lineSpan(offset, length);
  const plain = decryptLines(ensureKey(host, dom), mfn, span.start, page.bytes.subarray(span.start, span.end));
  return plain.slice(offset - span.start, offset - span.start + length);
}

type PieceResult = { ok: true; hpa: number; dom: DomainId } | { ok: false };

/** Remapping off (vanilla, or before vtdBoot): the iova is a host address, no isolation. */
function untranslatedPiece(host: Host, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  const hpa = piece.iova;
  const owner = host.state.ppt.get(Math.floor(hpa / PAGE_SIZE))?.owner ?? NO_DOMAIN;
  // The request is the device's domain's, wherever it lands (dma-confined judges that).
  const fields = { sid, dom: deviceDomain(host.state, sid), iova: piece.iova, len: piece.length, write: data !== undefined, hpa, fault: 0, effects: '' };
  if (!inMemory(host.state, hpa, piece.length)) {
    // Nothing answers beyond memory (a master abort): no bytes move.
    host.emit('dma.request', { ...fields, data: new Uint8Array(0) });
    return undefined;
  }
  if (data === undefined) {
    const bytes = storedBytes(host.state, hpa, piece.length);
    host.emit('dma.request', { ...fields, data: bytes.slice() });
    return bytes;
  }
  host.emit('dma.request', { ...fields, data: data.slice() });
  // The bytes land as they are, written by the device's domain (if anyone's).
  const writer = deviceDomain(host.state, sid);
  host.emit('mem.write', { dom: writer === NO_DOMAIN ? owner : writer, gpa: hpa, mfn: Math.floor(hpa / PAGE_SIZE), offset: hpa % PAGE_SIZE, stored: data.slice() });
  return data;
}

/** Translates one page piece through the unit; a fault is recorded and reported here. */
function translatePiece(host: Host, sid: number, piece: DmaPiece, data: Uint8Array | undefined): PieceResult & { effects: string } {
  const write = data !== undefined;
  const { result, effects } = vtdTranslate(host.state.io.vtd, hostPhysicalMemory(host.state), { sid, iova: piece.iova, write, size: piece.length });
  const encoded = encodeVtdEffects(effects);
  if (result.kind === 'fault') {
    host.emit('dma.request', {
      sid, dom: deviceDomain(host.state, sid), iova: piece.iova, len: piece.length, write, hpa: -1, fault: result.reason,
      effects: encoded, data: data !== undefined ? data.slice() : new Uint8Array(0),
    });
    return { ok: false, effects: encoded };
  }
  return { ok: true, hpa: result.hpa, dom: result.did - 1, effects: encoded };
}

function translatedPiece(host: Host, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  const t = translatePiece(host, sid, piece, data);
  if (!t.ok) return undefined;
  const fields = { sid, dom: t.dom, iova: piece.iova, len: piece.length, write: data !== undefined, hpa: t.hpa, fault: 0, effects: t.effects };
  const mfn = Math.floor(t.hpa / PAGE_SIZE);
  const offset = t.hpa % PAGE_SIZE;
  if (!inMemory(host.state, t.hpa, piece.length)) {
    host.emit('dma.request', { ...fields, data: new Uint8Array(0) });
    return undefined;
  }
  if (data === undefined) {
    const bytes = taggedRead(host, t.dom, t.hpa, piece.length);
    host.emit('dma.request', { ...fields, data: bytes.slice() });
    if (host.state.profile === 'secure' && host.state.memory.has(mfn)) {
      const span = lineSpan(offset, piece.length);
      host.emit('mem.decrypt', { dom: t.dom, mfn, offset: span.start, len: span.end - span.start, keyDom: t.dom });
    }
    return bytes;
  }
  host.emit('dma.request', { ...fields, data: data.slice() });
  // The iova is the guest-physical address (the tables mirror the p2m); SMM encrypts with the tagged guest's key.
  writeFrameWithKey(host, t.dom, t.dom, piece.iova, mfn, offset, data);
  return data;
}

function dmaPiece(host: Host, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  return host.state.io.xenVtd.enabled ? translatedPiece(host, sid, piece, data) : untranslatedPiece(host, sid, piece, data);
}

/**
 * A device reads `len` bytes at `iova`: one dma.request per 4 KiB page crossed, through the
 * unit when remapping is on. Undefined when a piece faulted (the rest is not attempted).
 */
export function dmaRead(host: Host, sid: number, iova: number, len: number): Uint8Array | undefined {
  const out = new Uint8Array(len);
  for (const piece of dmaPieces(iova, len)) {
    const bytes = dmaPiece(host, sid, piece, undefined);
    if (bytes === undefined) return undefined;
    out.set(bytes, piece.at);
  }
  return out;
}

/**
 * A device writes `data` at `iova`. A write into 0xFEEx_xxxx is an interrupt request (its
 * first 4 bytes, little-endian, are the MSI data), not memory. False when a piece faulted.
 */
export function dmaWrite(host: Host, sid: number, iova: number, data: Uint8Array): boolean {
  if (iova >= VTD_MSI_ADDRESS_BASE && iova < INTERRUPT_WINDOW_END) {
    const word = new Uint8Array(4);
    word.set(data.subarray(0, 4));
    interruptRequest(host, sid, iova, new DataView(word.buffer).getUint32(0, true));
    return true;
  }
  for (const piece of dmaPieces(iova, data.length)) {
    if (dmaPiece(host, sid, piece, data.subarray(piece.at, piece.at + piece.length)) === undefined) return false;
  }
  return true;
}

/** dma.request: what the translation did to the unit's caches and fault records. */
export function applyDmaRequest(state: HostState, e: EventOf<'dma.request'>): void {
  applyVtdEffects(state, decodeVtdEffects(e.effects));
}
