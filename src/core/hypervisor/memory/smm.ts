/**
 * SMM, the paper's Secure Memory Management: the page permission table check and the
 * per-domain encryption of guest memory.
 *
 * Keys are AES-256-XTS keys derived with HKDF from the run seed and the domain id. Memory is
 * encrypted in 64-byte lines (a cache line, as Intel TME-MK does) with the line's host
 * physical address as the tweak, so equal plaintext at two addresses never looks alike.
 */
import { createCipheriv, createDecipheriv, hkdfSync, type Cipher, type Decipher } from 'node:crypto';
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, RIGHT_READ, RIGHT_WRITE, type DomainId, type EventOf, type Mfn } from '../../../events/schema.ts';
import { PAGE_SIZE } from '../config.ts';
import type { Host, HostState } from '../state.ts';

export const LINE_SIZE = 64;
const KEY_BYTES = 64;
const KDF_SALT = Buffer.from('chronovisor/smm/key-table/v1');

/** The key table entry for a domain: HKDF-SHA256(seed, "dom=<id>"), 512 bits for XTS. */
export function deriveDomainKey(seed: string, dom: DomainId): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(seed, 'utf8'), KDF_SALT, Buffer.from(`dom=${dom}`), KEY_BYTES));
}

/**
 * AES-256-XTS (IEEE 1619) built on AES-ECB, so that one cipher per key serves every line:
 * Node's 'aes-256-xts' takes the tweak as its IV and so needs a new cipher per line, which
 * cost more than the encryption. The result is byte for byte that of 'aes-256-xts' (a test
 * holds the two side by side). Key = K1 (data) || K2 (tweak); lines are whole blocks, so no
 * ciphertext stealing.
 */
interface XtsCiphers {
  encrypt: Cipher;
  decrypt: Decipher;
  tweak: Cipher;
  /** Whole pages of tweaks by frame, oldest first (see tweakPage). */
  tweakPages: Map<Mfn, Buffer>;
}

/**
 * Ciphers by key object, and by key bytes: a state restored from a checkpoint holds new key
 * objects with the old bytes, and without the second map every restore built the ciphers
 * and every frame's tweaks again (in verify, a tenth of the bytes it allocated). Keys of
 * one machine are few; KEYS_BY_BYTES bounds the second map for campaigns of many machines.
 */
const ciphers = new WeakMap<Uint8Array, XtsCiphers>();
const ciphersByBytes = new Map<string, XtsCiphers>();
const KEYS_BY_BYTES = 32;

function ecb(make: typeof createCipheriv | typeof createDecipheriv, key: Uint8Array): Cipher & Decipher {
  const c = make('aes-256-ecb', key, null) as Cipher & Decipher;
  c.setAutoPadding(false);
  return c;
}

function xtsCiphers(key: Uint8Array): XtsCiphers {
  let c = ciphers.get(key);
  if (c !== undefined) return c;
  const bytes = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
  c = ciphersByBytes.get(bytes);
  if (c === undefined) {
    const k1 = key.subarray(0, 32);
    c = { encrypt: ecb(createCipheriv, k1), decrypt: ecb(createDecipheriv, k1), tweak: ecb(createCipheriv, key.subarray(32, 64)), tweakPages: new Map() };
    if (ciphersByBytes.size >= KEYS_BY_BYTES) ciphersByBytes.delete(ciphersByBytes.keys().next().value!);
    ciphersByBytes.set(bytes, c);
  }
  ciphers.set(key, c);
  return c;
}

const BLOCK = 16;
const BLOCKS_PER_LINE = LINE_SIZE / BLOCK;
const LINES_PER_PAGE = PAGE_SIZE / LINE_SIZE;
/** Frames whose tweaks a key keeps (4 KiB each): more than a guest's working set, bounded for large machines. */
const TWEAK_PAGES_PER_KEY = 2048;

/**
 * Every block's tweak in frame `mfn`: E_K2(line address) for a line's first block, then times
 * alpha in GF(2^128). They depend only on the key and the address, so a frame's are computed
 * once (one cipher call for its 64 lines) and kept: a guest store then costs one cipher call.
 */
function tweakPage(c: XtsCiphers, mfn: Mfn): Buffer {
  let all = c.tweakPages.get(mfn);
  if (all !== undefined) return all;
  const ivs = Buffer.alloc(LINES_PER_PAGE * BLOCK);
  for (let i = 0; i < LINES_PER_PAGE; i++) ivs.writeUIntLE(mfn * PAGE_SIZE + i * LINE_SIZE, i * BLOCK, 6);
  const first = c.tweak.update(ivs);
  all = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < LINES_PER_PAGE; i++) {
    let at = i * LINE_SIZE;
    first.copy(all, at, i * BLOCK, (i + 1) * BLOCK);
    for (let j = 1; j < BLOCKS_PER_LINE; j++, at += BLOCK) {
      // Multiply by alpha: shift the 128-bit little-endian value left by one, fold 0x87 back in.
      let carry = 0;
      for (let b = 0; b < BLOCK; b++) {
        const v = all[at + b];
        all[at + BLOCK + b] = ((v << 1) | carry) & 0xff;
        carry = v >>> 7;
      }
      if (carry) all[at + BLOCK] ^= 0x87;
    }
  }
  if (c.tweakPages.size >= TWEAK_PAGES_PER_KEY) c.tweakPages.delete(c.tweakPages.keys().next().value!);
  c.tweakPages.set(mfn, all);
  return all;
}

const MASKED = Buffer.alloc(PAGE_SIZE);

/** Encrypts or decrypts whole lines of frame `mfn` from byte `offset` on. */
function xts(encrypt: boolean, key: Uint8Array, mfn: Mfn, offset: number, data: Uint8Array): Uint8Array {
  const c = xtsCiphers(key);
  const t = tweakPage(c, mfn);
  const n = data.length;
  if (offset + n > PAGE_SIZE || (offset | n) % LINE_SIZE !== 0) assert(false, `XTS on bytes ${offset}..${offset + n} of a frame: not whole lines of one frame`);
  // The cipher copies its input: one scratch buffer serves every call.
  const masked = MASKED.subarray(0, n);
  for (let i = 0; i < n; i++) masked[i] = data[i] ^ t[offset + i];
  const out = (encrypt ? c.encrypt : c.decrypt).update(masked);
  for (let i = 0; i < n; i++) out[i] ^= t[offset + i];
  return new Uint8Array(out.buffer, out.byteOffset, n);
}

export function encryptLines(key: Uint8Array, mfn: Mfn, offset: number, plain: Uint8Array): Uint8Array {
  return xts(true, key, mfn, offset, plain);
}

export function decryptLines(key: Uint8Array, mfn: Mfn, offset: number, stored: Uint8Array): Uint8Array {
  return xts(false, key, mfn, offset, stored);
}

/** The line-aligned range covering [offset, offset+len) within a page. */
export function lineSpan(offset: number, len: number): { start: number; end: number } {
  const start = Math.floor(offset / LINE_SIZE) * LINE_SIZE;
  const end = Math.min(PAGE_SIZE, Math.ceil((offset + len) / LINE_SIZE) * LINE_SIZE);
  return { start, end };
}

/** Why SMM refuses an access, or undefined when the page permission table allows it. */
export function pptDenial(state: HostState, dom: DomainId, mfn: Mfn, write: boolean): string | undefined {
  const entry = state.ppt.get(mfn);
  if (entry === undefined) return 'frame not in the page permission table';
  if (entry.owner !== dom) return `frame owned by domain ${entry.owner}`;
  if ((entry.rights & (write ? RIGHT_WRITE : RIGHT_READ)) === 0) return write ? 'no write right' : 'no read right';
  return undefined;
}

/** The plaintext of `len` bytes of a frame as its owner would read them. */
export function ownerPlaintext(state: HostState, mfn: Mfn, offset: number, len: number): Uint8Array {
  const page = state.memory.get(mfn);
  if (page === undefined) return new Uint8Array(len);
  const owner = state.ppt.get(mfn)?.owner;
  const key = owner === undefined ? undefined : state.keyTable.get(owner);
  if (state.profile === 'vanilla' || key === undefined) return page.bytes.slice(offset, offset + len);
  const { start, end } = lineSpan(offset, len);
  const plain = decryptLines(key, mfn, start, page.bytes.subarray(start, end));
  return plain.slice(offset - start, offset - start + len);
}

export function gfnOf(gpa: number): number {
  return Math.floor(gpa / PAGE_SIZE) >>> 0;
}

export function pageOffset(gpa: number): number {
  return gpa & (PAGE_SIZE - 1);
}

// ---- the fold of SMM's events: the page permission table and the key table ----

/** Ownership changes also move the frame between the free pool and its owner. */
export function applyPpt(state: HostState, e: EventOf<'smm.ppt.update'>): void {
  if (e.owner === NO_DOMAIN) {
    state.ppt.delete(e.mfn);
    state.freeStack.push(e.mfn);
    return;
  }
  if (e.prevOwner === NO_DOMAIN) takeFromFreePool(state, e.mfn);
  state.ppt.set(e.mfn, { owner: e.owner, rights: e.rights });
}

function takeFromFreePool(state: HostState, mfn: number): void {
  const top = state.freeStack.length - 1;
  if (top >= 0 && state.freeStack[top] === mfn) {
    state.freeStack.pop();
  } else if (mfn === state.nextFresh) {
    state.nextFresh += 1;
  } else {
    const index = state.freeStack.lastIndexOf(mfn);
    if (index >= 0) state.freeStack.splice(index, 1);
  }
}

/** smm.scrub: the frame is cleared (it reads as zeros until written again). */
export function applyScrub(state: HostState, e: EventOf<'smm.scrub'>): void {
  state.memory.delete(e.mfn);
}

export function applyKeyAssign(state: HostState, e: EventOf<'smm.key.assign'>): void {
  state.keyTable.set(e.dom, e.key);
}

export function applyKeyRevoke(state: HostState, e: EventOf<'smm.key.revoke'>): void {
  state.keyTable.delete(e.dom);
}

/** The key SMM uses for `dom`, assigning it on first use (for example after a profile switch). */
export function ensureKey(host: Host, dom: DomainId): Uint8Array {
  assert(dom !== NO_DOMAIN, 'SMM asked for the key of no domain: a vCPU ran without a context switch');
  let key = host.state.keyTable.get(dom);
  if (key === undefined) {
    key = deriveDomainKey(host.state.config.seed, dom);
    host.emit('smm.key.assign', { dom, key });
  }
  return key;
}

