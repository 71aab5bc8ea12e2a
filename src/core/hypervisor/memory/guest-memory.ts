/**
 * The one path from a domain to memory: the p2m translation (the EPT in the CPU issue), then
 * SMM's page permission check and encryption. Scripted guests and, later, instructions both
 * come through here; nothing else reads or writes guest frames.
 */
import { NO_FRAME, type DomainId, type EventOf, type Gpa, type Mfn } from '../../../events/schema.ts';
import { forgetDecodes } from '../../hardware/cpu/interpreter.ts';
import { PAGE_SIZE } from '../config.ts';
import { isPrivatePage, makePagePrivate, type Host, type HostState } from '../state.ts';
import { decryptLines, encryptLines, ensureKey, gfnOf, lineSpan, pageOffset, pptDenial } from './smm.ts';

interface Piece {
  gpa: Gpa;
  offset: number;
  length: number;
  /** Where the piece starts in the caller's buffer. */
  at: number;
}

/** Splits an access into per-page pieces. */
function pieces(gpa: Gpa, length: number): Piece[] {
  const result: Piece[] = [];
  for (let at = 0; at < length;) {
    const address = (gpa + at) >>> 0;
    const offset = pageOffset(address);
    const n = Math.min(length - at, PAGE_SIZE - offset);
    result.push({ gpa: address, offset, length: n, at });
    at += n;
  }
  return result;
}

/** Translates through the p2m and the page permission table, or records the fault. */
function translate(host: Host, dom: DomainId, gpa: Gpa, write: boolean): Mfn | undefined {
  const mfn = host.state.domains.get(dom)?.p2m.get(gfnOf(gpa));
  const access = write ? 'w' : 'r';
  if (mfn === undefined) {
    host.emit('mem.fault', { dom, gpa, mfn: NO_FRAME, access, reason: 'p2m-missing' });
    return undefined;
  }
  if (host.state.profile === 'secure') {
    const denial = pptDenial(host.state, dom, mfn, write);
    if (denial !== undefined) {
      host.emit('mem.fault', { dom, gpa, mfn, access, reason: `ppt-denied: ${denial}` });
      return undefined;
    }
  }
  return mfn;
}

/** A guest write on `pcpu`. Returns false when a fault stopped it part way. */
export function guestWrite(host: Host, dom: DomainId, pcpu: number, gpa: Gpa, data: Uint8Array): boolean {
  for (const piece of pieces(gpa, data.length)) {
    const mfn = translate(host, dom, piece.gpa, true);
    if (mfn === undefined) return false;
    writeFrame(host, dom, pcpu, piece.gpa, mfn, piece.offset, data.subarray(piece.at, piece.at + piece.length));
  }
  return true;
}

/**
 * Stores bytes into a frame the access was already translated to, through SMM: in the
 * secure profile a read-modify-write of the lines it covers under the key SMM holds live on
 * the pCPU (a scrubbed, absent frame reads as zeros, so its first write encrypts the whole
 * page); in vanilla the bytes as they are.
 */
export function writeFrame(host: Host, dom: DomainId, pcpu: number, gpa: Gpa, mfn: Mfn, offset: number, bytes: Uint8Array): void {
  writeFrameWithKey(host, dom, host.state.sched.smmLive[pcpu], gpa, mfn, offset, bytes);
}

/** writeFrame with the key named: the domain builder writes a new guest's image with its key. */
export function writeFrameWithKey(host: Host, dom: DomainId, keyDom: DomainId, gpa: Gpa, mfn: Mfn, offset: number, bytes: Uint8Array): void {
  if (host.state.profile === 'vanilla') {
    host.emit('mem.write', { dom, gpa, mfn, offset, stored: bytes.slice() });
    return;
  }
  const key = ensureKey(host, keyDom);
  const page = host.state.memory.get(mfn);
  const { start, end } = page === undefined ? { start: 0, end: PAGE_SIZE } : lineSpan(offset, bytes.length);
  // The page's plaintext under this key (cached), patched: only the lines written are
  // encrypted again.
  const before = page === undefined ? ZERO_PAGE : plaintextUnder(key, mfn, page.bytes);
  const lines = LINES_SCRATCH.subarray(start, end);
  lines.set(before.subarray(start, end));
  lines.set(bytes, offset - start);
  const stored = encryptLines(key, mfn, start, lines);
  host.emit('mem.encrypt', { dom, mfn, offset: start, len: end - start, keyDom });
  host.emit('mem.write', { dom, gpa, mfn, offset: start, stored });
  // The new page's plaintext is known without decrypting it. When the stored page was written
  // in place (a private page), so is its cached plaintext: the cache entry stays right.
  const after = host.state.memory.get(mfn)!.bytes;
  const inPlace = page !== undefined && after === page.bytes;
  const plain = inPlace ? before : page === undefined ? new Uint8Array(PAGE_SIZE) : before.slice();
  if (inPlace) forgetDecodes(plain);
  plain.set(bytes, offset);
  plaintextCache.set(after, { key, plain });
}

/**
 * Plaintext of whole pages as SMM would decrypt them, cached by the page's bytes and the
 * key: a pure cache, so replay is unaffected. Each entry's plaintext is its own (never shared
 * with another entry), so a private page written in place has its plaintext patched in place.
 */
const plaintextCache = new WeakMap<Uint8Array, { key: Uint8Array; plain: Uint8Array }>();
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
/** The lines a write covers, as plaintext (encryptLines copies them at once). */
const LINES_SCRATCH = new Uint8Array(PAGE_SIZE);

/**
 * What an access on `pcpu` reads from a frame: SMM decrypts with the live key (the same bytes
 * the scripted path's mem.read carries as value). Emits nothing: the CPU's loads show in
 * the registers they fill.
 */
export function readFramePlain(host: Host, pcpu: number, mfn: Mfn): Uint8Array {
  const page = host.state.memory.get(mfn);
  if (page === undefined) return ZERO_PAGE;
  if (host.state.profile === 'vanilla') return page.bytes;
  return plaintextUnder(ensureKey(host, host.state.sched.smmLive[pcpu]), mfn, page.bytes);
}

function plaintextUnder(key: Uint8Array, mfn: Mfn, stored: Uint8Array): Uint8Array {
  const cached = plaintextCache.get(stored);
  if (cached !== undefined && cached.key === key) return cached.plain;
  const plain = decryptLines(key, mfn, 0, stored);
  plaintextCache.set(stored, { key, plain });
  return plain;
}

/** A guest read on `pcpu`; undefined when a fault stopped it. */
export function guestRead(host: Host, dom: DomainId, pcpu: number, gpa: Gpa, length: number): Uint8Array | undefined {
  const value = new Uint8Array(length);
  for (const piece of pieces(gpa, length)) {
    const mfn = translate(host, dom, piece.gpa, false);
    if (mfn === undefined) return undefined;
    const part = readPiece(host, dom, pcpu, piece, mfn);
    value.set(part, piece.at);
  }
  return value;
}

function readPiece(host: Host, dom: DomainId, pcpu: number, piece: Piece, mfn: Mfn): Uint8Array {
  const page = host.state.memory.get(mfn);
  const end = piece.offset + piece.length;
  const stored = page === undefined ? new Uint8Array(piece.length) : page.bytes.slice(piece.offset, end);
  let value = stored;
  if (host.state.profile === 'secure' && page !== undefined) {
    const keyDom = host.state.sched.smmLive[pcpu];
    const key = ensureKey(host, keyDom);
    const span = lineSpan(piece.offset, piece.length);
    const plain = decryptLines(key, mfn, span.start, page.bytes.subarray(span.start, span.end));
    value = plain.slice(piece.offset - span.start, end - span.start);
    host.emit('mem.decrypt', { dom, mfn, offset: span.start, len: span.end - span.start, keyDom });
  }
  host.emit('mem.read', { dom, gpa: piece.gpa, mfn, offset: piece.offset, stored, value });
  return value;
}

/**
 * dom0 maps a guest frame (a foreign mapping) and reads it. SMM does not decrypt for dom0,
 * so in the secure profile it sees the bytes as stored: ciphertext.
 */
export function foreignRead(host: Host, target: DomainId, gfn: number, offset: number, length: number): void {
  const mfn = host.state.domains.get(target)?.p2m.get(gfn);
  if (mfn === undefined) {
    host.emit('mem.fault', { dom: 0, gpa: gfn * PAGE_SIZE + offset, mfn: NO_FRAME, access: 'r', reason: 'p2m-missing' });
    return;
  }
  const n = Math.min(length, PAGE_SIZE - offset);
  const page = host.state.memory.get(mfn);
  const value = page === undefined ? new Uint8Array(n) : page.bytes.slice(offset, offset + n);
  host.emit('dom0.foreign_read', { target, gfn, mfn, offset, value });
}

// ---- the fold ----

export function applyWrite(state: HostState, e: EventOf<'mem.write'>, live: boolean): void {
  const old = state.memory.get(e.mfn);
  if (live && old !== undefined && isPrivatePage(old.bytes)) {
    // Bytes only this machine holds: written in place, saving a page copy per store.
    old.bytes.set(e.stored, e.offset);
    // In vanilla the CPU fetches the stored bytes themselves: their cached decodes are stale.
    if (state.profile === 'vanilla') forgetDecodes(old.bytes);
    if (old.writer !== e.dom) state.memory.set(e.mfn, { bytes: old.bytes, writer: e.dom });
    return;
  }
  // A new page (snapshots and clones share the old one), copied in one pass (never a Buffer view).
  const bytes = old !== undefined ? new Uint8Array(old.bytes) : new Uint8Array(PAGE_SIZE);
  bytes.set(e.stored, e.offset);
  state.memory.set(e.mfn, { bytes, writer: e.dom });
  if (live) makePagePrivate(bytes);
}
