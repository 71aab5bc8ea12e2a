/**
 * The forensic index: tables of its own in a recording, so that "who touched this byte"
 * never re-reads the whole run. Per run, per chunk of CHUNK_EVENTS events:
 *
 * - `fx_frames(run, mfn, chunk)`: every access to one host frame in that chunk, exact, as a
 *   packed blob of records (seq, kind, offset, length, and for a write the bytes whose
 *   plaintext it set), with a bitmask of the kinds present (a query for writes skips chunks
 *   of reads) and one of the frame's 128-byte lines written (a query for the last writer of
 *   a few bytes skips the chunks that wrote other lines without reading their records);
 * - `fx_written(run, mfn)`: a bitmap of the frame's bytes that the run ever wrote (a query
 *   for the last writer of a byte never written stops at once instead of reading every
 *   chunk of a busy frame);
 * - `fx_registers(run, dom, vcpu, chunk)`: the registers each x86 vCPU wrote in that chunk
 *   (a bitmask, silent writes included), so a backward slice finds a register's last
 *   writer without re-executing the chunks in between;
 * - `fx_runs(run)`: the index's version and how far it reaches.
 *
 * Nothing here knows what the rows mean (src/replay/forensics does); this module owns the
 * tables, the blob format and the transactions. Per-seq data lives in SQLite, never in a
 * JavaScript map, so a query's memory does not grow with the recording.
 */
import type Database from 'better-sqlite3';
import type { Seq } from './schema.ts';
import { assert } from './errors.ts';

/** Bumped whenever the rows' meaning or the blob format changes: an older index is rebuilt. */
export const FORENSIC_INDEX_VERSION = 3;

/** Bytes of a frame per bit of fx_frames.lines (32 lines: the mask is a 32-bit integer). */
export const LINE_BYTES = 128;

const DDL = `
CREATE TABLE IF NOT EXISTS fx_runs (
  run INTEGER PRIMARY KEY, version INTEGER NOT NULL, indexed_to INTEGER NOT NULL,
  complete INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fx_frames (
  run INTEGER NOT NULL, mfn INTEGER NOT NULL, chunk INTEGER NOT NULL, kinds INTEGER NOT NULL, lines INTEGER NOT NULL, accesses BLOB NOT NULL,
  PRIMARY KEY (run, mfn, chunk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fx_written (
  run INTEGER NOT NULL, mfn INTEGER NOT NULL, bytes BLOB NOT NULL,
  PRIMARY KEY (run, mfn)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fx_registers (
  run INTEGER NOT NULL, dom INTEGER NOT NULL, vcpu INTEGER NOT NULL, chunk INTEGER NOT NULL, written INTEGER NOT NULL,
  PRIMARY KEY (run, dom, vcpu, chunk)) WITHOUT ROWID;
`;

/** One access to a frame, as stored: offsets within the frame. */
export interface FrameAccess {
  seq: Seq;
  /** An AccessKind (src/replay/forensics/accesses.ts). */
  kind: number;
  offset: number;
  length: number;
  /** For a write: the bytes whose plaintext it set (SMM re-encrypts whole lines around them). */
  dataOffset: number;
  dataLength: number;
}

/** How far a run's index reaches. */
export interface IndexStatus {
  version: number;
  /** Events [run's base, indexedTo) of the run's own chunks are indexed. */
  indexedTo: Seq;
  /** The whole run is indexed (it had finished when it was). */
  complete: boolean;
  /** Bytes of the run's index rows. */
  bytes: number;
}

// ---- the blob: unsigned LEB128 varints -------------------------------------------------

/** Appends `value` (a non-negative integer below 2^53) as an unsigned LEB128 varint. */
function putVarint(out: number[], value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `varint of ${value}`);
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

/** Records of one frame in one chunk, seqs ascending: what fx_frames.accesses holds. */
export function encodeAccesses(accesses: readonly FrameAccess[], chunk: Seq): Uint8Array {
  const out: number[] = [];
  let last = chunk;
  for (const a of accesses) {
    assert(a.seq >= last, () => `accesses out of order at seq ${a.seq}`);
    const partial = a.dataOffset !== a.offset || a.dataLength !== a.length;
    putVarint(out, a.seq - last);
    putVarint(out, a.kind * 2 + (partial ? 1 : 0));
    putVarint(out, a.offset);
    putVarint(out, a.length);
    if (partial) {
      putVarint(out, a.dataOffset);
      putVarint(out, a.dataLength);
    }
    last = a.seq;
  }
  return Uint8Array.from(out);
}

export function decodeAccesses(bytes: Uint8Array, chunk: Seq): FrameAccess[] {
  const accesses: FrameAccess[] = [];
  let at = 0;
  const next = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      assert(at < bytes.length, 'a forensic index record runs past its blob');
      const b = bytes[at++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
  };
  let seq = chunk;
  while (at < bytes.length) {
    seq += next();
    const code = next();
    const offset = next();
    const length = next();
    const partial = code % 2 === 1;
    const dataOffset = partial ? next() : offset;
    const dataLength = partial ? next() : length;
    accesses.push({ seq, kind: Math.floor(code / 2), offset, length, dataOffset, dataLength });
  }
  return accesses;
}

// ---- the tables ------------------------------------------------------------------------

export interface FrameChunk {
  chunk: Seq;
  kinds: number;
  accesses: FrameAccess[];
}

/** A frame's chunk as a search for writes sees it first: which lines were written, records read on demand. */
export interface WrittenChunk {
  chunk: Seq;
  lines: number;
  accesses(): FrameAccess[];
}

/** The mask of LINE_BYTES lines that bytes [offset, offset + length) of a frame fall in. */
export function lineMask(offset: number, length: number): number {
  if (length <= 0) return 0;
  const first = Math.floor(offset / LINE_BYTES);
  const last = Math.floor((offset + length - 1) / LINE_BYTES);
  let mask = 0;
  for (let line = first; line <= last && line < 32; line++) mask |= 1 << line;
  return mask >>> 0;
}

/** Reads and writes the index tables of one recording's connection. */
export class ForensicIndexStore {
  private readonly statements;

  /**
   * True when the recording has the index's tables in their present shape (a file from
   * before them has none; one indexed by an older version has an older shape, rebuilt).
   */
  static present(db: Database.Database): boolean {
    const has = (table: string, column: string): boolean => db.prepare('SELECT 1 FROM pragma_table_info(?) WHERE name = ?').get(table, column) !== undefined;
    return has('fx_frames', 'lines') && has('fx_written', 'bytes') && has('fx_registers', 'written') && has('fx_runs', 'bytes');
  }

  /** Creates the tables if needed, dropping an older version's (their rows are stale anyway): only on a writable connection. */
  static ensureTables(db: Database.Database): void {
    if (!ForensicIndexStore.present(db)) db.exec('DROP TABLE IF EXISTS fx_frames; DROP TABLE IF EXISTS fx_written; DROP TABLE IF EXISTS fx_registers; DROP TABLE IF EXISTS fx_runs;');
    db.exec(DDL);
  }

  constructor(private readonly db: Database.Database) {
    assert(ForensicIndexStore.present(db), 'the forensic index tables are missing');
    this.statements = {
      status: db.prepare('SELECT version, indexed_to, complete, bytes FROM fx_runs WHERE run = ?'),
      chunksUp: db.prepare('SELECT chunk, kinds, accesses FROM fx_frames WHERE run = ? AND mfn = ? AND chunk >= ? AND chunk < ? ORDER BY chunk'),
      chunksDown: db.prepare('SELECT chunk, kinds, accesses FROM fx_frames WHERE run = ? AND mfn = ? AND chunk >= ? AND chunk < ? ORDER BY chunk DESC'),
      writtenDown: db.prepare('SELECT chunk, lines FROM fx_frames WHERE run = ? AND mfn = ? AND chunk >= ? AND chunk < ? AND lines != 0 ORDER BY chunk DESC'),
      records: db.prepare('SELECT accesses FROM fx_frames WHERE run = ? AND mfn = ? AND chunk = ?').pluck(),
      frameChunks: db.prepare('SELECT mfn, kinds FROM fx_frames WHERE run = ? AND chunk = ?'),
      written: db.prepare('SELECT bytes FROM fx_written WHERE run = ? AND mfn = ?').pluck(),
      insertWritten: db.prepare('INSERT OR REPLACE INTO fx_written (run, mfn, bytes) VALUES (?, ?, ?)'),
      clearWritten: db.prepare('DELETE FROM fx_written WHERE run = ?'),
      registersDown: db.prepare('SELECT chunk, written FROM fx_registers WHERE run = ? AND dom = ? AND vcpu = ? AND chunk >= ? AND chunk < ? ORDER BY chunk DESC'),
      registersUp: db.prepare('SELECT chunk, written FROM fx_registers WHERE run = ? AND dom = ? AND vcpu = ? AND chunk >= ? AND chunk < ? ORDER BY chunk'),
      insertFrame: db.prepare('INSERT OR REPLACE INTO fx_frames (run, mfn, chunk, kinds, lines, accesses) VALUES (?, ?, ?, ?, ?, ?)'),
      insertRegisters: db.prepare('INSERT OR REPLACE INTO fx_registers (run, dom, vcpu, chunk, written) VALUES (?, ?, ?, ?, ?)'),
      setStatus: db.prepare('INSERT OR REPLACE INTO fx_runs (run, version, indexed_to, complete, bytes) VALUES (?, ?, ?, ?, ?)'),
      clearFrames: db.prepare('DELETE FROM fx_frames WHERE run = ?'),
      clearRegisters: db.prepare('DELETE FROM fx_registers WHERE run = ?'),
      clearStatus: db.prepare('DELETE FROM fx_runs WHERE run = ?'),
    };
  }

  status(run: number): IndexStatus | undefined {
    const row = this.statements.status.get(run) as { version: number; indexed_to: number; complete: number; bytes: number } | undefined;
    return row === undefined ? undefined : { version: row.version, indexedTo: row.indexed_to, complete: row.complete === 1, bytes: row.bytes };
  }

  /** The frame's chunks with `first <= chunk < end` (chunk = its first seq), oldest first or newest first. */
  *frameChunks(run: number, mfn: number, first: Seq, end: Seq, newestFirst = false): Generator<FrameChunk> {
    const statement = newestFirst ? this.statements.chunksDown : this.statements.chunksUp;
    for (const row of statement.iterate(run, mfn, first, end) as Iterable<{ chunk: number; kinds: number; accesses: Uint8Array }>) {
      yield { chunk: row.chunk, kinds: row.kinds, accesses: decodeAccesses(row.accesses, row.chunk) };
    }
  }

  /** The frame's chunks with `first <= chunk < end` that wrote any line, newest first; their records read when asked. */
  *writtenChunks(run: number, mfn: number, first: Seq, end: Seq): Generator<WrittenChunk> {
    // Read as the caller goes (it stops at the last writer it needs): a frame written in
    // every chunk of a 100M-event run has ~24,000 rows.
    for (const row of this.statements.writtenDown.iterate(run, mfn, first, end) as Iterable<{ chunk: number; lines: number }>) {
      yield { chunk: row.chunk, lines: row.lines, accesses: () => decodeAccesses(this.statements.records.get(run, mfn, row.chunk) as Uint8Array, row.chunk) };
    }
  }

  /** The bitmap of the frame's bytes the run wrote (bit b % 8 of byte b / 8), if it wrote any. */
  written(run: number, mfn: number): Uint8Array | undefined {
    return this.statements.written.get(run, mfn) as Uint8Array | undefined;
  }

  /** The frames a chunk touches, with the kinds of access. */
  chunkFrames(run: number, chunk: Seq): { mfn: number; kinds: number }[] {
    return this.statements.frameChunks.all(run, chunk) as { mfn: number; kinds: number }[];
  }

  /** A vCPU's register masks of chunks with `first <= chunk < end`. */
  *registerChunks(run: number, dom: number, vcpu: number, first: Seq, end: Seq, newestFirst: boolean): Generator<{ chunk: Seq; written: number }> {
    const statement = newestFirst ? this.statements.registersDown : this.statements.registersUp;
    yield* statement.iterate(run, dom, vcpu, first, end) as Iterable<{ chunk: Seq; written: number }>;
  }

  // ---- writing (inside a transaction the builder holds) --------------------------------

  putFrame(run: number, mfn: number, chunk: Seq, kinds: number, lines: number, accesses: Uint8Array): void {
    this.statements.insertFrame.run(run, mfn, chunk, kinds, lines, accesses);
  }

  /** Adds bytes to the frame's written bitmap (OR-ed into what an earlier build of the run stored); returns the bytes added to the index. */
  addWritten(run: number, mfn: number, bitmap: Uint8Array): number {
    const old = this.written(run, mfn);
    const merged = Uint8Array.from(bitmap);
    if (old !== undefined) for (let i = 0; i < merged.length; i++) merged[i] |= old[i] ?? 0;
    this.statements.insertWritten.run(run, mfn, merged);
    return old === undefined ? merged.length : 0;
  }

  putRegisters(run: number, dom: number, vcpu: number, chunk: Seq, written: number): void {
    this.statements.insertRegisters.run(run, dom, vcpu, chunk, written);
  }

  setStatus(run: number, status: IndexStatus): void {
    this.statements.setStatus.run(run, status.version, status.indexedTo, status.complete ? 1 : 0, status.bytes);
  }

  /** Forgets a run's index (before a rebuild). */
  clear(run: number): void {
    this.statements.clearFrames.run(run);
    this.statements.clearWritten.run(run);
    this.statements.clearRegisters.run(run);
    this.statements.clearStatus.run(run);
  }

  begin(): void { this.db.exec('BEGIN IMMEDIATE'); }
  commit(): void { this.db.exec('COMMIT'); }
  rollback(): void { if (this.db.inTransaction) this.db.exec('ROLLBACK'); }
}
