/**
 * The msgpack the codec's fast path writes by hand: the values events are mostly made of
 * (integers, booleans, short integer arrays), byte for byte what msgpackr writes for them
 * (see its pack.js: integers below 0x40 as positive fixints, 0x40-0x7f being record ids,
 * 0xcc/0xcd/0xce above, negative fixint/0xd0/0xd1/0xd2 below zero; arrays as 0x9n/0xdc).
 * Each writer returns the position after what it wrote, or FAIL when the value needs
 * msgpackr itself (a string, bytes, a fraction, a long array); then what it wrote is garbage.
 * The field writers pass FAIL on, so a record's writes chain without a check between them.
 */

export const FAIL = -1;
/** Arrays longer than this go through msgpackr (keeps the room an event needs bounded). */
export const FAST_ARRAY_MAX = 64;

/** A 32-bit unsigned or signed integer, as msgpackr writes it; anything else is FAIL. */
export function writeNumber(t: Uint8Array, p: number, v: number): number {
  if (v >>> 0 === v) {
    if (v < 0x40) { t[p] = v; return p + 1; }
    if (v < 0x100) { t[p] = 0xcc; t[p + 1] = v; return p + 2; }
    if (v < 0x10000) { t[p] = 0xcd; t[p + 1] = v >> 8; t[p + 2] = v & 0xff; return p + 3; }
    t[p] = 0xce; t[p + 1] = v >>> 24; t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
    return p + 5;
  }
  if (v >> 0 === v) {
    if (v >= -0x20) { t[p] = 0x100 + v; return p + 1; }
    if (v >= -0x80) { t[p] = 0xd0; t[p + 1] = v + 0x100; return p + 2; }
    if (v >= -0x8000) { t[p] = 0xd1; t[p + 1] = (v >> 8) & 0xff; t[p + 2] = v & 0xff; return p + 3; }
    t[p] = 0xd2; t[p + 1] = (v >>> 24); t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
    return p + 5;
  }
  return FAIL;
}

/** A number field: typed as a number, but checked (a field may hold what its type does not say). */
export function writeNumberField(t: Uint8Array, p: number, v: unknown): number {
  return typeof v === 'number' && p >= 0 ? writeNumber(t, p, v) : FAIL;
}

export function writeBooleanField(t: Uint8Array, p: number, v: unknown): number {
  if (p < 0) return FAIL;
  if (v === true) { t[p] = 0xc3; return p + 1; }
  if (v === false) { t[p] = 0xc2; return p + 1; }
  return FAIL;
}

/** An array of integers (a plain Array, at most FAST_ARRAY_MAX long), as msgpackr writes it. */
export function writeNumberArrayField(t: Uint8Array, p: number, v: unknown): number {
  if (p < 0 || !Array.isArray(v) || v.constructor !== Array || v.length > FAST_ARRAY_MAX) return FAIL;
  const n = v.length;
  if (n < 0x10) t[p++] = 0x90 | n;
  else { t[p] = 0xdc; t[p + 1] = n >> 8; t[p + 2] = n & 0xff; p += 3; }
  for (let i = 0; i < n && p >= 0; i++) {
    const x: unknown = v[i];
    p = typeof x === 'number' ? writeNumber(t, p, x) : FAIL;
  }
  return p;
}
