/**
 * The recording store: one SQLite file per recording, in WAL mode, one writer at a time.
 *
 * - `runs`: one row per run; a fork names its parent and the seq it branched at.
 * - `chunks`: events in fixed-size, aligned chunks (CHUNK_EVENTS each, the last one of a run
 *   may be shorter), deflated msgpack; each chunk's hash covers the previous chunk's hash,
 *   its position and its bytes, so tampering, deletion and truncation are all detectable.
 *   A fork stores only its own chunks: those below its base seq are its parent's.
 * - `checkpoints`: machine states every K events; `pages`: content-addressed blobs (memory
 *   pages, guest programs) shared by every checkpoint of every run.
 * - `meta` and `codec`: the format marker, the schema version and the codec's structures.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { journalToChunk, type ChunkJournal } from './chunk-journal.ts';
import { ChunkBuilder, CodecError, EventCodec, schemaCodecTables, type CodecTables } from './codec.ts';
import { InputError, assert } from './errors.ts';
import { SCHEMA_VERSION, type Event, type Seq } from './schema.ts';

export const FORMAT_MARKER = 'chronovisor-recording';
/** Events per chunk. Chunks are aligned on multiples of this in every run. */
export const CHUNK_EVENTS = 4096;
/** The hash a run's chain starts from. */
export const GENESIS_HASH = Buffer.alloc(32);

export type RunStatus = 'recording' | 'complete' | 'stopped' | 'incomplete';

export interface RunRow {
  id: number;
  name: string;
  parentRun: number | null;
  forkSeq: number | null;
  /** First seq stored in this run's own chunks (0 for a root run). */
  baseSeq: number;
  seed: string;
  scenario: string;
  scenarioPath: string;
  config: string;
  schemaVersion: number;
  simVersion: string;
  status: RunStatus;
  headHash: Buffer;
  eventCount: number;
  writerPid: number | null;
  summary: string;
}

export interface ChunkRow {
  run: number;
  firstSeq: Seq;
  count: number;
  hash: Buffer;
  bytes: Buffer;
}

export interface DecodedChunk {
  firstSeq: Seq;
  events: Event[];
}

const DDL = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS codec (id INTEGER PRIMARY KEY CHECK (id = 1), kinds TEXT NOT NULL, structures TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  parent_run INTEGER REFERENCES runs(id),
  fork_seq INTEGER,
  base_seq INTEGER NOT NULL DEFAULT 0,
  seed TEXT NOT NULL,
  scenario TEXT NOT NULL,
  scenario_path TEXT NOT NULL,
  config TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  sim_version TEXT NOT NULL,
  status TEXT NOT NULL,
  head_hash BLOB NOT NULL,
  event_count INTEGER NOT NULL DEFAULT 0,
  writer_pid INTEGER,
  summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chunks (
  run INTEGER NOT NULL, first_seq INTEGER NOT NULL, count INTEGER NOT NULL,
  hash BLOB NOT NULL, bytes BLOB NOT NULL,
  PRIMARY KEY (run, first_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  run INTEGER NOT NULL, seq INTEGER NOT NULL, state BLOB NOT NULL,
  PRIMARY KEY (run, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pages (hash BLOB PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID;
`;

/**
 * sha256(prev || firstSeq || count || raw chunk bytes). Written as source (with createHash
 * and Buffer as its only free names) because the store thread evaluates the same text.
 */
const CHUNK_HASH_SOURCE = `function chunkHash(prev, firstSeq, count, raw) {
  const position = Buffer.alloc(12);
  position.writeBigUInt64LE(BigInt(firstSeq), 0);
  position.writeUInt32LE(count, 8);
  return createHash('sha256').update(prev).update(position).update(raw).digest();
}`;

type ChunkHash = (prev: Uint8Array, firstSeq: Seq, count: number, raw: Uint8Array) => Buffer;

export const chunkHash = new Function('createHash', 'Buffer', `return (${CHUNK_HASH_SOURCE});`)(createHash, Buffer) as ChunkHash;

export function inflateChunk(bytes: Uint8Array): Buffer {
  return inflateRawSync(bytes);
}

interface OpenOptions {
  readonly?: boolean;
}

export class RecordingStore {
  readonly codec: EventCodec;
  private readonly statements: ReturnType<RecordingStore['prepare']>;

  private constructor(readonly db: Database.Database, readonly path: string, readonly readonly: boolean) {
    this.codec = new EventCodec(this.loadCodecTables(), (s) => this.saveStructures(s));
    this.statements = this.prepare();
  }

  /** Opens an existing recording; refuses files that are not one, or are of a newer schema. */
  static open(path: string, options: OpenOptions = {}): RecordingStore {
    if (!existsSync(path)) {
      throw new InputError('no-such-file', `${path}: no such recording (record one with 'chronovisor run SCENARIO --out ${path}')`);
    }
    const readonly = options.readonly ?? false;
    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: true });
      checkFormat(db, path);
    } catch (error) {
      if (error instanceof InputError) throw error;
      throw new InputError('not-a-recording', `${path}: not a chronovisor recording (${(error as Error).message})`);
    }
    if (!readonly) configureWriter(db);
    return new RecordingStore(db, path, readonly);
  }

  /** Creates a new recording file. The caller has checked that nothing is at `path`. */
  static create(path: string, simVersion: string): RecordingStore {
    assert(!existsSync(path), () => `create over an existing file ${path}`);
    const db = new Database(path);
    configureWriter(db);
    db.exec(DDL);
    const tables = schemaCodecTables();
    db.transaction(() => {
      const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      meta.run('format', FORMAT_MARKER);
      meta.run('schema_version', String(SCHEMA_VERSION));
      meta.run('chunk_events', String(CHUNK_EVENTS));
      meta.run('created_by', `chronovisor ${simVersion}`);
      db.prepare('INSERT INTO codec (id, kinds, structures) VALUES (1, ?, ?)').run(
        JSON.stringify(tables.kinds), JSON.stringify(tables.structures));
    })();
    return new RecordingStore(db, path, false);
  }

  /** Opens `path` for writing, creating it if nothing is there. */
  static openOrCreate(path: string, simVersion: string): RecordingStore {
    return existsSync(path) ? RecordingStore.open(path) : RecordingStore.create(path, simVersion);
  }

  close(): void {
    this.db.close();
  }

  private prepare() {
    const db = this.db;
    return {
      runs: db.prepare('SELECT * FROM runs ORDER BY id'),
      run: db.prepare('SELECT * FROM runs WHERE id = ?'),
      runByName: db.prepare('SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1'),
      chunkAt: db.prepare('SELECT * FROM chunks WHERE run = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 1'),
      chunksFrom: db.prepare('SELECT * FROM chunks WHERE run = ? AND first_seq >= ? ORDER BY first_seq'),
      checkpointAtOrBefore: db.prepare('SELECT seq, state FROM checkpoints WHERE run = ? AND seq <= ? ORDER BY seq DESC LIMIT 1'),
      checkpointSeqs: db.prepare('SELECT seq FROM checkpoints WHERE run = ? ORDER BY seq'),
      page: db.prepare('SELECT bytes FROM pages WHERE hash = ?'),
      hasPage: db.prepare('SELECT 1 FROM pages WHERE hash = ?'),
    };
  }

  private loadCodecTables(): CodecTables {
    const row = this.db.prepare('SELECT kinds, structures FROM codec WHERE id = 1').get() as
      | { kinds: string; structures: string }
      | undefined;
    if (row === undefined) throw new InputError('not-a-recording', `${this.path}: the codec table is empty; the file is damaged`);
    return { kinds: JSON.parse(row.kinds), structures: JSON.parse(row.structures) };
  }

  private saveStructures(structures: string[][]): void {
    assert(!this.readonly, 'a read-only recording met an event shape it has no structure for');
    this.db.prepare('UPDATE codec SET structures = ? WHERE id = 1').run(JSON.stringify(structures));
  }

  // ---- runs -------------------------------------------------------------------------

  runs(): RunRow[] {
    return (this.statements.runs.all() as Record<string, unknown>[]).map(toRunRow);
  }

  /** A run by id or by name; names the choices when there is no such run. */
  run(ref: string | number): RunRow {
    const text = String(ref);
    const row = /^\d+$/.test(text)
      ? this.statements.run.get(Number(text))
      : this.statements.runByName.get(text);
    if (row === undefined) {
      const known = this.runs().map((r) => `${r.id} (${r.name})`).join(', ') || 'none';
      throw new InputError('no-such-run', `${this.path}: no run '${text}'; runs here: ${known}`);
    }
    return toRunRow(row as Record<string, unknown>);
  }

  /** The newest run, the default for commands given no --run. */
  latestRun(): RunRow {
    const runs = this.runs();
    if (runs.length === 0) throw new InputError('no-such-run', `${this.path}: the recording has no runs yet`);
    return runs[runs.length - 1];
  }

  createRun(info: {
    name: string; parentRun: number | null; forkSeq: number | null; baseSeq: number; seed: string;
    scenario: string; scenarioPath: string; config: string; simVersion: string; headHash: Buffer; writerPid: number;
  }): number {
    const result = this.db.prepare(`INSERT INTO runs
      (name, parent_run, fork_seq, base_seq, seed, scenario, scenario_path, config, schema_version, sim_version,
       status, head_hash, event_count, writer_pid)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'recording', ?, ?, ?)`).run(
      info.name, info.parentRun, info.forkSeq, info.baseSeq, info.seed, info.scenario, info.scenarioPath,
      info.config, SCHEMA_VERSION, info.simVersion, info.headHash, info.baseSeq, info.writerPid);
    return Number(result.lastInsertRowid);
  }

  finishRun(run: number, status: RunStatus, summary: string): void {
    this.db.prepare('UPDATE runs SET status = ?, summary = ?, writer_pid = NULL WHERE id = ?').run(status, summary, run);
  }

  // ---- chunks -----------------------------------------------------------------------

  /** The run that stores the chunk holding `seq` for `run` (a fork's prefix is its parent's). */
  ownerOf(run: RunRow, seq: Seq): RunRow {
    let owner = run;
    while (seq < owner.baseSeq) {
      assert(owner.parentRun !== null, () => `run ${owner.id} has base ${owner.baseSeq} but no parent`);
      owner = this.run(owner.parentRun);
    }
    return owner;
  }

  chunkRowAt(run: number, seq: Seq): ChunkRow | undefined {
    const row = this.statements.chunkAt.get(run, seq) as Record<string, unknown> | undefined;
    return row === undefined ? undefined : toChunkRow(row);
  }

  /** The run's own chunks from `firstSeq` on, in order (a lazy iterator). */
  *chunkRows(run: number, firstSeq: Seq = 0): Generator<ChunkRow> {
    for (const row of this.statements.chunksFrom.iterate(run, firstSeq)) {
      yield toChunkRow(row as Record<string, unknown>);
    }
  }

  decodeChunk(row: ChunkRow): DecodedChunk {
    try {
      return { firstSeq: row.firstSeq, events: this.codec.decodeChunk(inflateChunk(row.bytes)) };
    } catch (error) {
      if (error instanceof CodecError || (error as { code?: string }).code?.startsWith('Z_')) {
        throw new InputError('not-a-recording',
          `${this.path}: chunk at seq ${row.firstSeq} of run ${row.run} cannot be decoded (${(error as Error).message}); run 'chronovisor verify' to see the damage`);
      }
      throw error;
    }
  }

  // ---- checkpoints and pages ----------------------------------------------------------

  /** A checkpoint's state bytes (stored deflated). */
  checkpointAtOrBefore(run: number, seq: Seq): { seq: Seq; state: Buffer } | undefined {
    const row = this.statements.checkpointAtOrBefore.get(run, seq) as { seq: Seq; state: Buffer } | undefined;
    if (row === undefined) return undefined;
    try {
      return { seq: row.seq, state: inflateRawSync(row.state) };
    } catch (error) {
      throw new InputError('not-a-recording', `${this.path}: the checkpoint at seq ${row.seq} of run ${run} is damaged (${(error as Error).message}); run 'chronovisor verify' to see the damage`);
    }
  }

  checkpointSeqs(run: number): Seq[] {
    return (this.statements.checkpointSeqs.all(run) as { seq: Seq }[]).map((r) => r.seq);
  }

  page(hash: Uint8Array): Buffer {
    const row = this.statements.page.get(hash) as { bytes: Buffer } | undefined;
    if (row === undefined) {
      throw new InputError('not-a-recording', `${this.path}: page ${Buffer.from(hash).toString('hex').slice(0, 16)} is missing; the recording is damaged`);
    }
    return row.bytes;
  }

  hasPage(hash: Uint8Array): boolean {
    return this.statements.hasPage.get(hash) !== undefined;
  }
}

const SQL_INSERT_CHUNK = 'INSERT INTO chunks (run, first_seq, count, hash, bytes) VALUES (?, ?, ?, ?, ?)';
const SQL_UPDATE_HEAD = 'UPDATE runs SET head_hash = ?, event_count = ? WHERE id = ?';
const SQL_INSERT_CHECKPOINT = 'INSERT OR REPLACE INTO checkpoints (run, seq, state) VALUES (?, ?, ?)';
const SQL_INSERT_PAGE = 'INSERT OR IGNORE INTO pages (hash, bytes) VALUES (?, ?)';
/** Chunks and checkpoints are deflated at this level (the chain hashes the raw bytes). */
const DEFLATE_LEVEL = 1;

interface PendingCheckpoint {
  seq: Seq;
  state: Uint8Array;
  pages: [Uint8Array, Uint8Array][];
}

/** A chunk as the storing side gets it (the storer hashes it onto the chain). */
interface ChunkCommit {
  firstSeq: Seq;
  count: number;
  raw: Uint8Array;
}

/**
 * The store thread's program (plain JavaScript, evaluated in a worker): a ChunkStorer on its
 * own connection, fed by messages in order. After each message it counts it in `signal[0]`;
 * an error sets `signal[1]` and is posted on the error port.
 */
const STORE_THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { deflateRawSync } = require('node:zlib');
const { createHash } = require('node:crypto');
const Database = require(workerData.sqlite);
const signal = new Int32Array(workerData.signal);
const errors = workerData.errors;
let storer;
let db;
let journalToChunk;
parentPort.on('message', (m) => {
  try {
    if (m.t === 'open') {
      db = new Database(workerData.path, { fileMustExist: true });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      const ChunkStorer = new Function('return (' + workerData.storer + ');')();
      const chunkHash = new Function('createHash', 'Buffer', 'return (' + workerData.hash + ');')(createHash, Buffer);
      // (__name: what the TypeScript loader may call to keep function names; nothing to keep here.)
      journalToChunk = new Function('__name', 'return (' + workerData.journal + ');')((f) => f);
      storer = new ChunkStorer(db, workerData.run, workerData.committed, Buffer.from(new Uint8Array(workerData.head)), chunkHash, deflateRawSync, workerData.sql, workerData.level);
    } else if (Atomics.load(signal, 1) === 0) {
      if (m.t === 'chunk') storer.commit({ firstSeq: m.firstSeq, count: m.count, raw: journalToChunk(m.journal) });
      else if (m.t === 'checkpoint') storer.checkpoint(m.checkpoint);
      else if (m.t === 'close') db.close();
      if (storer !== undefined) new Uint8Array(workerData.head).set(storer.head);
    }
  } catch (error) {
    Atomics.store(signal, 1, 1);
    errors.postMessage(String(error && error.stack || error));
  }
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
  if (m.t === 'close') { parentPort.close(); errors.close(); }
});
`;

/**
 * Writes chunks and checkpoints into one run's tables: each chunk in its own transaction, with
 * the checkpoints it makes due (a checkpoint waits for the chunk that commits event seq-1, so
 * no checkpoint ever refers to events that are not on disk). Plain JavaScript, as source: the
 * recording thread compiles it, and a store thread evaluates the same text.
 */
const CHUNK_STORER_SOURCE = `class ChunkStorer {
  constructor(db, run, committed, head, hash, deflate, sql, level) {
    this.db = db; this.run = run; this.committed = committed; this.head = head; this.hash = hash;
    this.deflate = deflate; this.level = level;
    this.insertChunk = db.prepare(sql.chunk); this.updateHead = db.prepare(sql.head);
    this.insertCheckpoint = db.prepare(sql.checkpoint); this.insertPage = db.prepare(sql.page);
    this.pending = [];
  }
  checkpoint(c) {
    this.pending.push(c);
    if (c.seq <= this.committed) this.commit(undefined);
  }
  commit(chunk) {
    const committed = chunk === undefined ? this.committed : chunk.firstSeq + chunk.count;
    const due = this.pending.filter((c) => c.seq <= committed);
    if (chunk === undefined && due.length === 0) return;
    const hash = chunk === undefined ? this.head : this.hash(this.head, chunk.firstSeq, chunk.count, chunk.raw);
    const deflated = chunk === undefined ? undefined : this.deflate(chunk.raw, { level: this.level });
    const states = due.map((c) => this.deflate(c.state, { level: this.level }));
    this.db.transaction(() => {
      if (chunk !== undefined) {
        this.insertChunk.run(this.run, chunk.firstSeq, chunk.count, hash, deflated);
        this.updateHead.run(hash, committed, this.run);
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
  takePending() {
    const pending = this.pending;
    this.pending = [];
    return pending;
  }
}`;

const STORER_SQL = { chunk: SQL_INSERT_CHUNK, head: SQL_UPDATE_HEAD, checkpoint: SQL_INSERT_CHECKPOINT, page: SQL_INSERT_PAGE };

interface ChunkStorer {
  /** Events stored so far. */
  committed: Seq;
  /** The chain hash after them. */
  head: Uint8Array;
  checkpoint(c: PendingCheckpoint): void;
  /** Commits `chunk` (if any) and the checkpoints it makes due, in one transaction. */
  commit(chunk: ChunkCommit | undefined): void;
  takePending(): PendingCheckpoint[];
}

type ChunkStorerClass = new (
  db: Database.Database, run: number, committed: Seq, head: Uint8Array, hash: ChunkHash,
  deflate: (bytes: Uint8Array, options: { level: number }) => Uint8Array, sql: typeof STORER_SQL, level: number,
) => ChunkStorer;

const ChunkStorer = new Function(`return (${CHUNK_STORER_SOURCE});`)() as ChunkStorerClass;

/** A recording this long (in chunks) moves deflating and storing to a store thread. */
const THREAD_AFTER_CHUNKS = 8;
/** Chunks (and checkpoints) handed to the store thread and not yet stored, at most. */
const THREAD_MAX_IN_FLIGHT = 16;

/**
 * The store thread of one writer: deflates and stores chunks and checkpoints on a second
 * connection while the machine goes on. It changes when things reach the disk, never what:
 * the bytes, hashes and transactions are those of the recording thread's own ChunkStorer.
 */
class StoreThread {
  private readonly worker: Worker;
  private readonly signal = new Int32Array(new SharedArrayBuffer(8));
  private readonly errors: MessagePort;
  private sent = 0;
  /** [message count after which it is stored, committed seq then], for chunk messages in flight. */
  private readonly inFlight: [number, Seq][] = [];
  private committed: Seq;
  /** The chain hash after the chunks stored, written by the thread after each message. */
  private readonly head = new Uint8Array(new SharedArrayBuffer(32));

  constructor(path: string, run: number, committed: Seq, head: Uint8Array) {
    this.committed = committed;
    this.head.set(head);
    const { port1, port2 } = new MessageChannel();
    this.errors = port1;
    this.worker = new Worker(STORE_THREAD_SOURCE, {
      eval: true,
      // Plain JavaScript: none of the parent's loaders (tsx) or flags.
      execArgv: [],
      workerData: {
        path, run, committed, signal: this.signal.buffer, head: this.head.buffer, errors: port2,
        sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), storer: CHUNK_STORER_SOURCE, hash: CHUNK_HASH_SOURCE,
        journal: journalToChunk.toString(),
        level: DEFLATE_LEVEL, sql: STORER_SQL,
      },
      transferList: [port2],
    });
    this.worker.unref();
    this.post({ t: 'open' });
  }

  /** Events stored so far. */
  get committedSeq(): Seq {
    const done = Atomics.load(this.signal, 0);
    while (this.inFlight.length > 0 && this.inFlight[0][0] <= done) this.committed = this.inFlight.shift()![1];
    return this.committed;
  }

  /** The chain hash once everything sent is stored (waits for that). */
  get headHash(): Buffer {
    this.waitFor(this.sent);
    return Buffer.from(this.head);
  }

  /** Hands a chunk over as its journal: the thread writes its bytes (journalToChunk), then stores it. */
  chunk(firstSeq: Seq, count: number, journal: ChunkJournal): void {
    // Copies the thread owns: the journal's arrays are views of the chunk builder's buffers.
    const words = journal.words.slice();
    const bytes = new Uint8Array(journal.bytes);
    this.post({ t: 'chunk', firstSeq, count, journal: { count: journal.count, words, bytes, stepPrefix: journal.stepPrefix } }, [words.buffer, bytes.buffer]);
    this.inFlight.push([this.sent, firstSeq + count]);
    this.waitFor(this.sent - THREAD_MAX_IN_FLIGHT);
  }

  checkpoint(c: PendingCheckpoint): void {
    // Exactly its bytes, owned by the thread (a view would take its whole buffer along).
    const state = new Uint8Array(c.state);
    const pages = c.pages.map(([hash, bytes]): [Uint8Array, Uint8Array] => [new Uint8Array(hash), new Uint8Array(bytes)]);
    this.post({ t: 'checkpoint', checkpoint: { seq: c.seq, state, pages } }, [state.buffer, ...pages.flatMap(([h, b]) => [h.buffer as ArrayBuffer, b.buffer as ArrayBuffer])]);
  }

  /** Waits until everything sent is stored, and ends the thread (its connection closed). */
  close(): void {
    this.post({ t: 'close' });
    this.waitFor(this.sent);
    this.worker.terminate().catch(() => {});
  }

  private post(message: unknown, transfer: ArrayBuffer[] = []): void {
    this.check();
    this.worker.postMessage(message, transfer);
    this.sent++;
  }

  /** Blocks until the thread has handled `count` messages. */
  private waitFor(count: number): void {
    for (let done = Atomics.load(this.signal, 0); done < count; done = Atomics.load(this.signal, 0)) {
      this.check();
      Atomics.wait(this.signal, 0, done, 1000);
    }
    this.check();
  }

  private check(): void {
    if (Atomics.load(this.signal, 1) === 0) return;
    const message = receiveMessageOnPort(this.errors)?.message;
    this.worker.terminate().catch(() => {});
    throw new Error(`the store thread failed: ${String(message ?? 'unknown error')}`);
  }
}

/**
 * Appends one run's events, chunk by chunk, each chunk in its own transaction. Events are
 * encoded as they come (only their bytes are kept). A long recording hands deflating and
 * storing to a store thread (see StoreThread); flush() waits for it.
 */
export class RunWriter {
  private readonly chunk: ChunkBuilder;
  private bufferFirstSeq: Seq;
  private readonly storer: ChunkStorer;
  private thread: StoreThread | null = null;
  private chunksWritten = 0;

  /**
   * @param prefix events of the parent between the aligned base and the fork point
   * @param head the chain hash before `baseSeq`
   */
  constructor(private readonly store: RecordingStore, readonly run: number, baseSeq: Seq, head: Buffer, prefix: Event[] = []) {
    assert(baseSeq % CHUNK_EVENTS === 0, () => `run base ${baseSeq} is not chunk-aligned`);
    this.bufferFirstSeq = baseSeq;
    this.chunk = new ChunkBuilder(store.codec);
    for (const event of prefix) this.chunk.add(event);
    this.storer = new ChunkStorer(store.db, run, baseSeq, head, chunkHash, deflateRawSync, STORER_SQL, DEFLATE_LEVEL);
  }

  /** The seq the next appended event gets. */
  get nextSeq(): Seq {
    return this.bufferFirstSeq + this.chunk.count;
  }

  /** Events committed to disk so far (a reader sees exactly these). */
  get committedSeq(): Seq {
    return this.thread === null ? this.bufferFirstSeq : this.thread.committedSeq;
  }

  /** The chain hash after the events committed (after a flush: after every event). */
  get headHash(): Buffer {
    return this.thread === null ? Buffer.from(this.storer.head) : this.thread.headHash;
  }

  append(events: readonly Event[]): void {
    const chunk = this.chunk;
    for (let i = 0; i < events.length; i++) {
      chunk.add(events[i]);
      if (chunk.count === CHUNK_EVENTS) this.commitChunk();
    }
  }

  /** Queues a checkpoint of the state after `seq` events, written once event seq-1 is on disk. */
  checkpoint(seq: Seq, state: Uint8Array, pages: [Uint8Array, Uint8Array][]): void {
    assert(seq <= this.nextSeq, () => `checkpoint at ${seq} is ahead of the events (${this.nextSeq})`);
    if (this.thread !== null) this.thread.checkpoint({ seq, state, pages });
    else this.storer.checkpoint({ seq, state, pages });
  }

  /** Writes whatever is buffered, even a short chunk, and waits until it is on disk; only at the end of a run. */
  flush(): void {
    if (this.chunk.count > 0) this.commitChunk();
    else if (this.thread === null) this.storer.commit(undefined);
    if (this.thread !== null) {
      const thread = this.thread;
      this.thread = null;
      thread.close();
      this.storer.committed = thread.committedSeq;
      this.storer.head = thread.headHash;
    }
  }

  /**
   * After a failure, instead of flush: waits until what was handed to the store thread is on
   * disk, as if each chunk had been committed when it filled; the unfinished chunk is not
   * written (as when the writer was synchronous).
   */
  abandon(): void {
    const thread = this.thread;
    this.thread = null;
    if (thread === null) return;
    try {
      thread.close();
    } catch {
      // The failure being reported matters more than a failure to store.
    }
  }

  /** Stores the buffered events as a chunk (or hands them to the store thread). */
  private commitChunk(): void {
    const count = this.chunk.count;
    const firstSeq = this.bufferFirstSeq;
    const journal = this.chunk.takeJournal();
    this.bufferFirstSeq += count;
    if (this.thread === null && ++this.chunksWritten > THREAD_AFTER_CHUNKS && this.store.path !== ':memory:') {
      this.thread = new StoreThread(this.store.path, this.run, this.storer.committed, this.storer.head);
      for (const c of this.storer.takePending()) this.thread.checkpoint(c);
    }
    if (this.thread !== null) this.thread.chunk(firstSeq, count, journal);
    else this.storer.commit({ firstSeq, count, raw: journalToChunk(journal) });
  }
}

function configureWriter(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
}

function checkFormat(db: Database.Database, path: string): void {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  const format = hasMeta ? (db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined) : undefined;
  if (format?.value !== FORMAT_MARKER) {
    throw new InputError('not-a-recording', `${path}: not a chronovisor recording (an SQLite database without chronovisor's tables); give a file written by 'chronovisor run'`);
  }
  const version = Number((db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value);
  if (version > SCHEMA_VERSION) {
    throw new InputError('schema-newer', `${path}: recorded with event schema v${version}, but this chronovisor reads up to v${SCHEMA_VERSION}; upgrade chronovisor to open it`);
  }
  if (version < SCHEMA_VERSION) {
    throw new InputError('schema-older', `${path}: recorded with event schema v${version}, older than this chronovisor's v${SCHEMA_VERSION}; re-record the scenario`);
  }
}

function toRunRow(r: Record<string, unknown>): RunRow {
  return {
    id: r.id as number,
    name: r.name as string,
    parentRun: r.parent_run as number | null,
    forkSeq: r.fork_seq as number | null,
    baseSeq: r.base_seq as number,
    seed: r.seed as string,
    scenario: r.scenario as string,
    scenarioPath: r.scenario_path as string,
    config: r.config as string,
    schemaVersion: r.schema_version as number,
    simVersion: r.sim_version as string,
    status: r.status as RunStatus,
    headHash: r.head_hash as Buffer,
    eventCount: r.event_count as number,
    writerPid: r.writer_pid as number | null,
    summary: r.summary as string,
  };
}

function toChunkRow(r: Record<string, unknown>): ChunkRow {
  return { run: r.run as number, firstSeq: r.first_seq as number, count: r.count as number, hash: r.hash as Buffer, bytes: r.bytes as Buffer };
}
