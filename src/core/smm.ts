/**
 * SMM, the paper's Secure Memory Management: the page permission table check and the
 * per-domain encryption of guest memory.
 *
 * Keys are AES-256-XTS keys derived with HKDF from the run seed and the domain id. Memory is
 * encrypted in 64-byte lines (a cache line, as Intel TME-MK does) with the line's host
 * physical address as the tweak, so equal plaintext at two addresses never looks alike.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { RIGHT_READ, RIGHT_WRITE, type DomainId, type Mfn } from '../events/schema.ts';
import { PAGE_SIZE } from './scenario.ts';
import type { MachineState } from './state.ts';

export const LINE_SIZE = 64;
const KEY_BYTES = 64;
const KDF_SALT = Buffer.from('chronovisor/smm/key-table/v1');

/** The key table entry for a domain: HKDF-SHA256(seed, "dom=<id>"), 512 bits for XTS. */
export function deriveDomainKey(seed: string, dom: DomainId): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(seed, 'utf8'), KDF_SALT, Buffer.from(`dom=${dom}`), KEY_BYTES));
}

function tweak(hpa: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUIntLE(hpa, 0, 6);
  return iv;
}

/** Encrypts or decrypts whole lines starting at host physical address `hpa`. */
function xts(encrypt: boolean, key: Uint8Array, hpa: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let at = 0; at < data.length; at += LINE_SIZE) {
    const make = encrypt ? createCipheriv : createDecipheriv;
    const cipher = make('aes-256-xts', key, tweak(hpa + at));
    cipher.setAutoPadding(false);
    const line = cipher.update(data.subarray(at, at + LINE_SIZE));
    out.set(line, at);
    cipher.final();
  }
  return out;
}

export function encryptLines(key: Uint8Array, mfn: Mfn, offset: number, plain: Uint8Array): Uint8Array {
  return xts(true, key, mfn * PAGE_SIZE + offset, plain);
}

export function decryptLines(key: Uint8Array, mfn: Mfn, offset: number, stored: Uint8Array): Uint8Array {
  return xts(false, key, mfn * PAGE_SIZE + offset, stored);
}

/** The line-aligned range covering [offset, offset+len) within a page. */
export function lineSpan(offset: number, len: number): { start: number; end: number } {
  const start = Math.floor(offset / LINE_SIZE) * LINE_SIZE;
  const end = Math.min(PAGE_SIZE, Math.ceil((offset + len) / LINE_SIZE) * LINE_SIZE);
  return { start, end };
}

/** Why SMM refuses an access, or undefined when the page permission table allows it. */
export function pptDenial(state: MachineState, dom: DomainId, mfn: Mfn, write: boolean): string | undefined {
  const entry = state.ppt.get(mfn);
  if (entry === undefined) return 'frame not in the page permission table';
  if (entry.owner !== dom) return `frame owned by domain ${entry.owner}`;
  if ((entry.rights & (write ? RIGHT_WRITE : RIGHT_READ)) === 0) return write ? 'no write right' : 'no read right';
  return undefined;
}

/** The plaintext of `len` bytes of a frame as its owner would read them. */
export function ownerPlaintext(state: MachineState, mfn: Mfn, offset: number, len: number): Uint8Array {
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

