/**
 * The msgpack the codec's fast path writes by hand: the values events are mostly made of
 * (integers, booleans, short integer arrays), byte for byte what msgpackr writes for them
 * (see its pack.js: integers below 0x40 as positive fixints, 0x40-0x7f being record ids,
 * 0xcc/0xcd/0xce above, negative fixint/0xd0/0xd1/0xd2 below zero; arrays as 0x9n/0xdc).
 * Each writer returns the position after what it wrote, or FAIL when the value needs
 * msgpackr itself (a string, bytes, a fraction); then what it wrote is garbage.
 *
 * The generated per-kind writers (generated/event-codecs.ts) write uint32s in place, as
 * writeUint32 does, and call these for the rest.
 */

export const FAIL = -1;
/** Arrays longer than this go through msgpackr (keeps the room an event needs bounded). */
export const FAST_ARRAY_MAX = 64;

/** An unsigned 32-bit integer (the caller has checked `v >>> 0 === v`). */
function writeUint32(t: Uint8Array, p: number, v: number): number {
  if (v < 0x40) { t[p] = v; return p + 1; }
  if (v < 0x100) { t[p] = 0xcc; t[p + 1] = v; return p + 2; }
  if (v < 0x10000) { t[p] = 0xcd; t[p + 1] = v >> 8; t[p + 2] = v & 0xff; return p + 3; }
  t[p] = 0xce; t[p + 1] = v >>> 24; t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
  return p + 5;
}

/** A 32-bit unsigned or signed integer, as msgpackr writes it; anything else is FAIL. */
export function writeNumber(t: Uint8Array, p: number, v: number): number {
  if (v >>> 0 === v) return writeUint32(t, p, v);
  if (v >> 0 === v) {
    if (v >= -0x20) { t[p] = 0x100 + v; return p + 1; }
    if (v >= -0x80) { t[p] = 0xd0; t[p + 1] = v + 0x100; return p + 2; }
    if (v >= -0x8000) { t[p] = 0xd1; t[p + 1] = (v >> 8) & 0xff; t[p + 2] = v & 0xff; return p + 3; }
    t[p] = 0xd2; t[p + 1] = (v >>> 24); t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
    return p + 5;
  }
  return FAIL;
}

/** What a field typed as a number holds that is not a uint32 (a negative, a fraction, or not a number at all). */
export function writeOtherNumber(t: Uint8Array, p: number, v: unknown): number {
  return typeof v === 'number' ? writeNumber(t, p, v) : FAIL;
}

/** The header of an array of `n` (at most FAST_ARRAY_MAX) elements. */
export function writeArrayHeader(t: Uint8Array, p: number, n: number): number {
  if (n < 0x10) { t[p] = 0x90 | n; return p + 1; }
  t[p] = 0xdc; t[p + 1] = n >> 8; t[p + 2] = n & 0xff;
  return p + 3;
}

/** Whether a field typed as a number array can be written by the fast path. */
export function isShortArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.constructor === Array && v.length <= FAST_ARRAY_MAX;
}
