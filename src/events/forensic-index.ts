/**
 * The forensic index: tables of its own in a recording, so that "who touched this byte"
 * never re-reads the whole run. Per run, per chunk of CHUNK_EVENTS events:
 *
 * - `fx_frames(run, mfn, chunk)`: every access to one host frame in that chunk, exact, as a
 *   packed blob of records (seq, kind, offset, length, and for a write the bytes whose
 *   plaintext it set), with a bitmask of the kinds present (a query for writes skips chunks
 *   of reads);
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
export const FORENSIC_INDEX_VERSION = 2;

const DDL = `
CREATE TABLE IF NOT EXISTS fx_runs (
  run INTEGER PRIMARY KEY, version INTEGER NOT NULL, indexed_to INTEGER NOT NULL,
  complete INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fx_frames (
  run INTEGER NOT NULL, mfn INTEGER NOT NULL, chunk INTEGER NOT NULL, kinds INTEGER NOT NULL, accesses BLOB NOT NULL,
  PRIMARY KEY (run, mfn, chunk)) WITHOUT ROWID;
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

/** Reads and writes the index tables of one recording's connection. */
export class ForensicIndexStore {
  private readonly statements;

  /** True when the recording has the index's tables at all (a file from before them has none). */
  static present(db: Database.Database): boolean {
    return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fx_runs'").get() !== undefined;
  }

  /** Creates the tables if needed: only on a writable connection. */
  static ensureTables(db: Database.Database): void {
    db.exec(DDL);
  }

  constructor(private readonly db: Database.Database) {
    assert(ForensicIndexStore.present(db), 'the forensic index tables are missing');
    this.statements = {
      status: db.prepare('SELECT version, indexed_to, complete, bytes FROM fx_runs WHERE run = ?'),
      chunksUp: db.prepare('SELECT chunk, kinds, accesses FROM fx_frames WHERE run = ? AND mfn = ? AND chunk >= ? AND chunk < ? ORDER BY chunk'),
      chunksDown: db.prepare('SELECT chunk, kinds, accesses FROM fx_frames WHERE run = ? AND mfn = ? AND chunk >= ? AND chunk < ? ORDER BY chunk DESC'),
      frameChunks: db.prepare('SELECT mfn, kinds FROM fx_frames WHERE run = ? AND chunk = ?'),
      registersDown: db.prepare('SELECT chunk, written FROM fx_registers WHERE run = ? AND dom = ? AND vcpu = ? AND chunk >= ? AND chunk < ? ORDER BY chunk DESC'),
      registersUp: db.prepare('SELECT chunk, written FROM fx_registers WHERE run = ? AND dom = ? AND vcpu = ? AND chunk >= ? AND chunk < ? ORDER BY chunk'),
      insertFrame: db.prepare('INSERT OR REPLACE INTO fx_frames (run, mfn, chunk, kinds, accesses) VALUES (?, ?, ?, ?, ?)'),
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

  putFrame(run: number, mfn: number, chunk: Seq, kinds: number, accesses: Uint8Array): void {
    this.statements.insertFrame.run(run, mfn, chunk, kinds, accesses);
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
    this.statements.clearRegisters.run(run);
    this.statements.clearStatus.run(run);
  }

  begin(): void { this.db.exec('BEGIN IMMEDIATE'); }
  commit(): void { this.db.exec('COMMIT'); }
  rollback(): void { if (this.db.inTransaction) this.db.exec('ROLLBACK'); }
}
