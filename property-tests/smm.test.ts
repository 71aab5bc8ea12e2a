/**
 * SMM's memory encryption is AES-256-XTS (IEEE 1619) with the line's host address as the
 * tweak. It is built on cached AES-ECB ciphers for speed; this law holds it to Node's own
 * 'aes-256-xts', line by line, and checks that decryption inverts it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { LINE_SIZE, decryptLines, encryptLines } from '../src/core/hypervisor/memory/smm.ts';
import { runs } from './helpers.ts';

function referenceXts(key: Uint8Array, hpa: number, plain: Uint8Array): Uint8Array {
  const out = new Uint8Array(plain.length);
  for (let at = 0; at < plain.length; at += LINE_SIZE) {
    const iv = Buffer.alloc(16);
    iv.writeUIntLE(hpa + at, 0, 6);
    const cipher = createCipheriv('aes-256-xts', key, iv);
    cipher.setAutoPadding(false);
    out.set(cipher.update(plain.subarray(at, at + LINE_SIZE)), at);
    cipher.final();
  }
  return out;
}

test('SMM encryption is byte for byte aes-256-xts per 64-byte line, and decryption inverts it', () => {
  const input = fc.record({
    // XTS refuses a key whose halves are equal; derived keys never have them.
    key: fc.uint8Array({ minLength: 64, maxLength: 64 }).filter((k) => Buffer.compare(Buffer.from(k.subarray(0, 32)), Buffer.from(k.subarray(32))) !== 0),
    mfn: fc.integer({ min: 0, max: 2 ** 20 }),
    line: fc.integer({ min: 0, max: 63 }),
    lines: fc.integer({ min: 1, max: 64 }),
    seed: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  }).filter(({ line, lines }) => line + lines <= 64);
  fc.assert(fc.property(input, ({ key, mfn, line, lines, seed }) => {
    const plain = new Uint8Array(lines * LINE_SIZE).map((_, i) => seed[i % 64] ^ (i >> 6));
    const offset = line * LINE_SIZE;
    const stored = encryptLines(key, mfn, offset, plain);
    assert.deepEqual(Buffer.from(stored), Buffer.from(referenceXts(key, mfn * 4096 + offset, plain)));
    assert.deepEqual(Buffer.from(decryptLines(key, mfn, offset, stored)), Buffer.from(plain));
    // The same key bytes in another object (a state restored from a checkpoint holds such
    // copies), as a view into a larger buffer, find the same ciphers; earlier results are not
    // overwritten by later calls.
    const holder = new Uint8Array(key.length + 3);
    holder.set(key, 3);
    const copy = holder.subarray(3);
    assert.deepEqual(Buffer.from(encryptLines(copy, mfn, offset, plain)), Buffer.from(stored));
    assert.deepEqual(Buffer.from(stored), Buffer.from(referenceXts(key, mfn * 4096 + offset, plain)));
  }), { numRuns: runs(200) });
});
