/**
 * The write side of a recording: hashing chunks onto a run's chain and storing them, with the
 * checkpoints they make due, each chunk in its own transaction. The recording thread and the
 * store thread (store-thread-worker.ts) both store through a ChunkStorer, so the bytes,
 * hashes and transactions are the same whichever thread writes.
 */
import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import type Database from 'better-sqlite3';
import type { ChunkSummary } from './chunk-summary.ts';
import type { Seq } from './schema.ts';

/** Chunks and checkpoints are deflated at this level (the chain hashes the raw bytes). */
export const DEFLATE_LEVEL = 1;

/** sha256(prev || firstSeq as u64 LE || count as u32 LE || raw chunk bytes). */
export function chunkHash(prev: Uint8Array, firstSeq: Seq, count: number, raw: Uint8Array): Buffer {
  const position = Buffer.alloc(12);
  position.writeBigUInt64LE(BigInt(firstSeq), 0);
  position.writeUInt32LE(count, 8);
  return createHash('sha256').update(prev).update(position).update(raw).digest();
}

/**
 * SQLite's page cache per connection, in KiB. better-sqlite3 builds SQLite with 16 MB, which
 * a reader of a long recording fills (its chunks pass through the cache, each once: a cache
 * does nothing for them) and `verify` holds three times (its own connection and each
 * worker's). With 4 MiB, `verify` with 2 workers on 100M events of the long workload peaked
 * at 269 MB instead of 306-323, and on 10M at 259 instead of 273-288; seeks (p50 ~9 ms, p99
 * 15-21 ms) and the forensic queries took as long as with 16 MB (with 2 MB, seek p99 was
 * 22-23 ms in two runs of three).
 */
const PAGE_CACHE_KIB = 4096;

/** The settings of every connection. */
export function configureConnection(db: Database.Database): void {
  db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
}

/** The connection settings of every writer: WAL (readers go on while it writes), one writer. */
export function configureWriter(db: Database.Database): void {
  configureConnection(db);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
}

/** The version of the chunk index (chunk-summary.ts): readers and writers ignore an index of another. */
export const CHUNK_INDEX_VERSION = 1;

/** Whether the recording has a chunk index of the version this program writes. */
export function hasChunkIndexTable(db: Database.Database): boolean {
  const row = db.prepare("SELECT value FROM meta WHERE key = 'chunk_index_version'").get() as { value: string } | undefined;
  return row !== undefined && Number(row.value) === CHUNK_INDEX_VERSION;
}

/** A machine state after `seq` events, and the blobs (pages, programs) it is the first to use. */
export interface PendingCheckpoint {
  seq: Seq;
  state: Uint8Array;
  pages: [hash: Uint8Array, bytes: Uint8Array][];
}

/** A chunk as the storing side gets it (the storer hashes it onto the chain). */
export interface ChunkCommit {
  firstSeq: Seq;
  count: number;
  raw: Uint8Array;
  /** Its entry in the chunk index (none: the recording keeps no index). */
  summary?: ChunkSummary;
}

/**
 * Writes chunks and checkpoints into one run's tables: each chunk in its own transaction, with
 * the checkpoints it makes due (a checkpoint waits for the chunk that commits event seq-1, so
 * no checkpoint ever refers to events that are not on disk).
 */
export class ChunkStorer {
  private readonly insertChunk: Database.Statement;
  private readonly updateHead: Database.Statement;
  private readonly insertCheckpoint: Database.Statement;
  private readonly insertPage: Database.Statement;
  /** Undefined when the recording has no chunk index (see RecordingStore.writesChunkIndex). */
  private readonly insertSummary: Database.Statement | undefined;
  private pending: PendingCheckpoint[] = [];

  /**
   * @param committed events of the run already stored
   * @param head the chain hash after them
   */
  constructor(private readonly db: Database.Database, private readonly run: number, public committed: Seq, public head: Uint8Array) {
    this.insertChunk = db.prepare('INSERT INTO chunks (run, first_seq, count, hash, bytes) VALUES (?, ?, ?, ?, ?)');
    this.updateHead = db.prepare('UPDATE runs SET head_hash = ?, event_count = ? WHERE id = ?');
    this.insertCheckpoint = db.prepare('INSERT OR REPLACE INTO checkpoints (run, seq, state) VALUES (?, ?, ?)');
    this.insertPage = db.prepare('INSERT OR IGNORE INTO pages (hash, bytes) VALUES (?, ?)');
    this.insertSummary = hasChunkIndexTable(db)
      ? db.prepare('INSERT OR REPLACE INTO chunk_index (run, first_seq, kinds_lo, kinds_hi, domains, violations, text) VALUES (?, ?, ?, ?, ?, ?, ?)')
      : undefined;
  }

  /** Queues a checkpoint; it is written with the chunk that puts event seq-1 on disk (now, if that is done). */
  checkpoint(c: PendingCheckpoint): void {
    this.pending.push(c);
    if (c.seq <= this.committed) this.commit(undefined);
  }

  /** Commits `chunk` (if any) and the checkpoints it makes due, in one transaction. */
  commit(chunk: ChunkCommit | undefined): void {
    const committed = chunk === undefined ? this.committed : chunk.firstSeq + chunk.count;
    const due = this.pending.filter((c) => c.seq <= committed);
    if (chunk === undefined && due.length === 0) return;
    const hash = chunk === undefined ? this.head : chunkHash(this.head, chunk.firstSeq, chunk.count, chunk.raw);
    const deflated = chunk === undefined ? undefined : deflateRawSync(chunk.raw, { level: DEFLATE_LEVEL });
    const states = due.map((c) => deflateRawSync(c.state, { level: DEFLATE_LEVEL }));
    this.db.transaction(() => {
      if (chunk !== undefined) {
        this.insertChunk.run(this.run, chunk.firstSeq, chunk.count, hash, deflated);
        this.updateHead.run(hash, committed, this.run);
        const s = chunk.summary;
        if (s !== undefined && this.insertSummary !== undefined) {
          this.insertSummary.run(this.run, chunk.firstSeq, s.kindsLo, s.kindsHi, s.domains, s.violations, s.text ?? null);
        }
      }
      due.forEach((c, i) => {
        for (const [pageHash, bytes] of c.pages) this.insertPage.run(pageHash, bytes);
        this.insertCheckpoint.run(this.run, c.seq, states[i]);
      });
    })();
    this.head = hash;
    this.committed = committed;
    this.pending = this.pending.filter((c) => c.seq > committed);
  }

  /** The checkpoints not written yet, handed to whoever stores on (the store thread). */
  takePending(): PendingCheckpoint[] {
    const pending = this.pending;
    this.pending = [];
    return pending;
  }
}
