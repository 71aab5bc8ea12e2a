/**
 * Reading the forensic index of a run: the accesses to a frame in a range of seqs, the
 * last write of each byte before a seq, and the chunks in which a vCPU wrote a register.
 * A fork's events below its base are its parent's, and so are their rows: each seq is read
 * from the run that stores it.
 */
import { InputError } from '../../events/errors.ts';
import type { Mfn, Seq } from '../../events/schema.ts';
import { CHUNK_EVENTS, type RecordingStore, type RunRow } from '../../events/store.ts';
import { ForensicIndexStore, lineMask } from '../../events/forensic-index.ts';
import { WRITE_KINDS, type Access, type AccessKindCode } from './steps.ts';
import { indexStale, lineageOf } from './index-build.ts';
import type { HostRange } from './address.ts';

/** One run's own part of a lineage: seqs [from, to). */
interface Segment {
  run: number;
  from: Seq;
  to: Seq;
}

const chunkOf = (seq: Seq): Seq => Math.floor(seq / CHUNK_EVENTS) * CHUNK_EVENTS;

export class ForensicIndex {
  private readonly store: ForensicIndexStore;
  private readonly segments: Segment[];

  /** Opens the index of `run` (and its ancestors); an InputError when it is missing or behind. */
  constructor(recording: RecordingStore, readonly run: RunRow) {
    const lineage = lineageOf(recording, run);
    const present = ForensicIndexStore.present(recording.db);
    const index = present ? new ForensicIndexStore(recording.db) : undefined;
    const stale = lineage.find((r) => indexStale(index, r));
    if (stale !== undefined || index === undefined) {
      throw new InputError('no-index', `${recording.path}: run ${(stale ?? run).id} has no forensic index${present ? ' (or an old or partial one)' : ''}; build it with 'chronovisor index ${recording.path}'`);
    }
    this.store = index;
    let to = Infinity;
    this.segments = lineage.map((r) => {
      const segment = { run: r.id, from: r.baseSeq, to };
      to = r.baseSeq;
      return segment;
    });
  }

  /** The parts of [from, to) each run stores, newest run first. */
  private parts(from: Seq, to: Seq): Segment[] {
    return this.segments
      .map((s) => ({ run: s.run, from: Math.max(from, s.from), to: Math.min(to, s.to) }))
      .filter((s) => s.from < s.to);
  }

  /**
   * The accesses to frame `mfn` with from <= seq < to, oldest first (or newest first), of
   * the kinds in the `kinds` bitmask.
   */
  *accesses(mfn: Mfn, from: Seq, to: Seq, options: { newestFirst?: boolean; kinds?: number } = {}): Generator<Access> {
    const kinds = options.kinds ?? ~0;
    const parts = this.parts(from, to);
    if (!options.newestFirst) parts.reverse();
    for (const part of parts) {
      for (const chunk of this.store.frameChunks(part.run, mfn, chunkOf(part.from), part.to, options.newestFirst)) {
        if ((chunk.kinds & kinds) === 0) continue;
        const list = options.newestFirst ? [...chunk.accesses].reverse() : chunk.accesses;
        for (const a of list) {
          if (a.seq < part.from || a.seq >= part.to || ((1 << a.kind) & kinds) === 0) continue;
          yield { ...a, mfn, kind: a.kind as AccessKindCode };
        }
      }
    }
  }

  /**
   * For each byte of `range`, the last write before `before` (a mem.write, a table word or
   * a scrub): undefined for a byte never written since the recording began. With `data`,
   * the last write whose data set the byte (a secure write re-encrypts its whole lines;
   * the bytes it did not write keep their older writer).
   */
  lastWrites(range: HostRange, before: Seq, data = false): (Access | undefined)[] {
    const found: (Access | undefined)[] = new Array(range.length).fill(undefined);
    // Bytes no run of the lineage ever wrote have no writer to look for.
    const bitmaps = this.segments.map((s) => this.store.written(s.run, range.mfn)).filter((b) => b !== undefined);
    const everWritten = (b: number): boolean => bitmaps.some((bitmap) => (bitmap[b >> 3] & (1 << (b & 7))) !== 0);
    let missing = 0;
    for (let b = range.offset; b < range.offset + range.length; b++) if (everWritten(b)) missing++;
    if (missing === 0) return found;
    // The lines of the bytes still without a writer: chunks that wrote none of them are skipped unread.
    const missingLines = (): number => {
      let mask = 0;
      found.forEach((a, i) => { if (a === undefined && everWritten(range.offset + i)) mask |= lineMask(range.offset + i, 1); });
      return mask;
    };
    let lines = missingLines();
    for (const part of this.parts(0, before)) {
      for (const chunk of this.store.writtenChunks(part.run, range.mfn, chunkOf(part.from), part.to)) {
        if ((chunk.lines & lines) === 0) continue;
        const accesses = chunk.accesses();
        for (let k = accesses.length - 1; k >= 0; k--) {
          const a = accesses[k];
          if (a.seq < part.from || a.seq >= part.to || a.seq >= before || ((1 << a.kind) & WRITE_KINDS) === 0) continue;
          const start = data ? a.dataOffset : a.offset;
          const end = start + (data ? a.dataLength : a.length);
          for (let b = Math.max(start, range.offset); b < Math.min(end, range.offset + range.length); b++) {
            if (found[b - range.offset] === undefined) {
              found[b - range.offset] = { ...a, mfn: range.mfn, kind: a.kind as AccessKindCode };
              missing--;
            }
          }
          if (missing === 0) return found;
        }
        lines = missingLines();
      }
    }
    return found;
  }

  /** The chunks (first seq) before `before` in which a vCPU wrote register slot `slot`, newest first. */
  *registerWriteChunks(dom: number, vcpu: number, slot: number, before: Seq): Generator<Seq> {
    for (const part of this.parts(0, before)) {
      for (const row of this.store.registerChunks(part.run, dom, vcpu, chunkOf(part.from), part.to, true)) {
        if ((row.written & (1 << slot)) !== 0) yield row.chunk;
      }
    }
  }

  /** The frames touched in a chunk (by the run that stores it), with the kinds of access. */
  chunkFrames(chunk: Seq): { mfn: Mfn; kinds: number }[] {
    const part = this.parts(chunk, chunk + 1)[0];
    return part === undefined ? [] : this.store.chunkFrames(part.run, chunk);
  }
}
