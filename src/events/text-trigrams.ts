/**
 * The text filter of the chunk index: a Bloom filter of the trigrams of text in a chunk, so
 * that a search for text far away reads only the chunks that may hold it.
 *
 * A search lowercases the event's line and looks for the query in it (tui/search.ts). Only
 * trigrams of "word" characters (a-z, 0-9) are kept: any trigram of the query made only of
 * word characters lies inside a run of word characters of the line, and so inside one
 * field's text, a field name or the kind's name, never across them. Trigrams made only of
 * 0-9, a-f and x (numbers, hex, addresses: the text of nearly every event) are counted as
 * present everywhere and never stored.
 *
 * Positions are taken in a filter of FILTER_BITS bits; a stored filter may be folded to a
 * power-of-two fraction of that size (bit i of the folded filter is the OR of the bits i
 * modulo its size), and is read modulo its own size.
 */

export const FILTER_BITS = 4096;
/** Positions set per trigram. */
const HASHES = 2;
/** A stored filter is folded while it stays at most this full. */
const FOLDED_FILL_MAX = 0.3;
const FILTER_BITS_MIN = 256;

/** Character classes by char code: 0 other, 1 word character, 2 a word character of numbers (0-9, a-f, x). */
const CLASS = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 2;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = c <= 0x66 || c === 0x78 ? 2 : 1;

const classOf = (c: number): number => (c < 128 ? CLASS[c] : 0);

/** A trigram's hash; its filter positions are its low and next 12 bits. */
function trigramHash(a: number, b: number, c: number): number {
  let h = Math.imul(a | (b << 8) | (c << 16), 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  return (h ^ (h >>> 13)) >>> 0;
}

/**
 * Calls `each` with the hash of every trigram of `text` (lowercased already, as a search
 * lowercases: toLowerCase turns a few other characters into ASCII letters) that the filter
 * keeps: word characters, not only number characters. Repeats included.
 */
function forEachTrigram(text: string, each: (hash: number) => void): void {
  let a = 0;
  let b = 0;
  let classA = 0;
  let classB = 0;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const k = classOf(c);
    if (k === 0) {
      run = 0;
      continue;
    }
    if (++run >= 3 && (k === 1 || classA === 1 || classB === 1)) each(trigramHash(a, b, c));
    a = b;
    classA = classB;
    b = c;
    classB = k;
  }
}

/** Adds the trigrams of `text` to a filter of FILTER_BITS bits. */
export function addText(filter: Uint8Array, text: string): void {
  forEachTrigram(text.toLowerCase(), (h) => {
    for (let i = 0; i < HASHES; i++) {
      const bit = (h >>> (12 * i)) & (FILTER_BITS - 1);
      filter[bit >> 3] |= 1 << (bit & 7);
    }
  });
}

/** The hashes of the trigrams of a query's text that a filter can rule out (none: it cannot). */
export function queryTrigrams(text: string): number[] {
  const hashes = new Set<number>();
  forEachTrigram(text.toLowerCase(), (h) => hashes.add(h));
  return [...hashes];
}

/** Whether a (possibly folded) filter may hold every trigram given. */
export function filterMayHold(filter: Uint8Array, hashes: readonly number[]): boolean {
  const mask = filter.length * 8 - 1;
  for (const h of hashes) {
    for (let i = 0; i < HASHES; i++) {
      const bit = (h >>> (12 * i)) & mask;
      if ((filter[bit >> 3] & (1 << (bit & 7))) === 0) return false;
    }
  }
  return true;
}

function bitsSet(filter: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < filter.length; i++) {
    let v = filter[i];
    while (v !== 0) { v &= v - 1; n++; }
  }
  return n;
}

/** The filter folded as small as it goes while staying sparse; undefined when it holds nothing. */
export function foldFilter(filter: Uint8Array): Uint8Array | undefined {
  let folded = filter;
  if (bitsSet(folded) === 0) return undefined;
  while (folded.length * 8 > FILTER_BITS_MIN) {
    const half = folded.length / 2;
    const next = new Uint8Array(half);
    for (let i = 0; i < half; i++) next[i] = folded[i] | folded[i + half];
    if (bitsSet(next) > next.length * 8 * FOLDED_FILL_MAX) break;
    folded = next;
  }
  return folded === filter ? filter.slice() : folded;
}
