/**
 * Chunk journals: a chunk as the recording thread hands it over, with its cpu.steps still as
 * numbers, and the function that writes the chunk's msgpack from it. Its own module, with
 * no code imported, because the store thread loads it (and nothing else of the codec).
 */
import type { ChunkSummary } from './chunk-summary.ts';

/**
 * A chunk as the recording thread leaves it: the records in order, each either as its bytes
 * or, for a cpu.step (nearly every event of a CPU-bound run), as its raw field values, whose
 * msgpack bytes journalToChunk writes later, on whichever thread stores the chunk. Entries
 * in `words`: an even word 2L is a record of L bytes, the next L of `bytes`; an odd word
 * 2N+1 is a cpu.step followed by its dom, vcpu, pcpu, eip, next and N delta words (all
 * uint32: anything else is written as bytes).
 */
export interface ChunkJournal {
  count: number;
  words: Uint32Array;
  bytes: Uint8Array;
  /** What precedes a cpu.step's values: its record header and kind code. */
  stepPrefix: Uint8Array;
  /** The chunk's entry in the chunk index (a ChunkBuilder always gives one). */
  summary?: ChunkSummary;
}

/**
 * The msgpack bytes of a journal: exactly the bytes the records would have had written one
 * by one (an array of `count` records). Written out by hand, with no helper calls: it runs
 * for every cpu.step of a recording, on the store thread.
 */
export function journalToChunk(journal: ChunkJournal): Uint8Array {
  const { count, words, bytes, stepPrefix } = journal;
  const out = new Uint8Array(5 + bytes.length + words.length * 5 + count * stepPrefix.length);
  let p = 0;
  if (count < 0x10) out[p++] = 0x90 | count;
  else if (count < 0x10000) { out[0] = 0xdc; out[1] = count >> 8; out[2] = count & 0xff; p = 3; }
  else { out[0] = 0xdd; out[1] = count >>> 24; out[2] = (count >> 16) & 0xff; out[3] = (count >> 8) & 0xff; out[4] = count & 0xff; p = 5; }
  let b = 0;
  for (let q = 0; q < words.length;) {
    const head = words[q++];
    if ((head & 1) === 0) {
      const length = head >>> 1;
      out.set(bytes.subarray(b, b + length), p);
      p += length;
      b += length;
      continue;
    }
    const n = head >>> 1;
    out.set(stepPrefix, p);
    p += stepPrefix.length;
    // dom, vcpu, pcpu, eip and next; after next, the delta array's header; then its n elements.
    for (let i = 0; i < 5 + n; i++) {
      const v = words[q++];
      if (v < 0x40) out[p++] = v;
      else if (v < 0x100) { out[p] = 0xcc; out[p + 1] = v; p += 2; }
      else if (v < 0x10000) { out[p] = 0xcd; out[p + 1] = v >> 8; out[p + 2] = v & 0xff; p += 3; }
      else { out[p] = 0xce; out[p + 1] = v >>> 24; out[p + 2] = (v >> 16) & 0xff; out[p + 3] = (v >> 8) & 0xff; out[p + 4] = v & 0xff; p += 5; }
      if (i === 4) {
        if (n < 0x10) out[p++] = 0x90 | n;
        else { out[p] = 0xdc; out[p + 1] = 0; out[p + 2] = n; p += 3; }
      }
    }
  }
  return out.subarray(0, p);
}
