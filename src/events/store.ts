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
import { existsSync, statSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { journalToChunk } from './chunk-journal.ts';
import { CHUNK_INDEX_VERSION, ChunkStorer, chunkHash, configureConnection, configureWriter, hasChunkIndexTable } from './chunk-storer.ts';
import { ChunkBuilder, CodecError, EventCodec, schemaCodecTables, type CodecTables } from './codec.ts';
import { InputError, assert, isStorageFull } from './errors.ts';
import { SCHEMA_VERSION, type Event, type Seq } from './schema.ts';
import { StoreThread } from './store-thread.ts';

export { chunkHash } from './chunk-storer.ts';

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
  /**
   * The versions of the formats above the events layer the run was recorded in (the
   * compiled scenario, the machine's meaning of events, checkpoints), by name; {} for runs
   * recorded before they were kept.
   */
  formats: RunFormats;
  simVersion: string;
  status: RunStatus;
  headHash: Buffer;
  eventCount: number;
  writerPid: number | null;
  summary: string;
}

/** A run whose record cannot be read, and why. */
export interface DamagedRun {
  id: number;
  damage: RecordingDamage;
}

export type RunFormats = Readonly<Record<string, number>>;

export interface ChunkRow {
  run: number;
  firstSeq: Seq;
  count: number;
  hash: Buffer;
  bytes: Buffer;
}

/** A chunk's entry in the chunk index (chunk-summary.ts), as stored. */
export interface ChunkSummaryRow {
  firstSeq: Seq;
  kindsLo: number;
  kindsHi: number;
  domains: number;
  violations: number;
  /** The folded text filter; null when the chunk holds no text a filter keeps. */
  text: Buffer | null;
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
  summary TEXT NOT NULL DEFAULT '{}',
  formats TEXT NOT NULL DEFAULT '{}'
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
 * The chunk index (chunk-summary.ts): added to any recording a writer opens, so a file made
 * before it gains it; its runs recorded before have no rows, and read as chunks that may
 * hold anything.
 */
const CHUNK_INDEX_DDL = `
CREATE TABLE IF NOT EXISTS chunk_index (
  run INTEGER NOT NULL, first_seq INTEGER NOT NULL,
  kinds_lo INTEGER NOT NULL, kinds_hi INTEGER NOT NULL, domains INTEGER NOT NULL, violations INTEGER NOT NULL, text BLOB,
  PRIMARY KEY (run, first_seq)) WITHOUT ROWID;
`;

export function inflateChunk(bytes: Uint8Array): Buffer {
  return inflateRawSync(bytes);
}

interface OpenOptions {
  readonly?: boolean;
}

export class RecordingStore {
  readonly codec: EventCodec;
  private readonly statements: ReturnType<RecordingStore['prepare']>;
  /** Reads of the chunk index, when the recording has one of the version this program reads. */
  private readonly summaryStatements: ReturnType<RecordingStore['prepareSummaries']> | undefined;

  private constructor(readonly db: Database.Database, readonly path: string, readonly readonly: boolean) {
    this.codec = new EventCodec(this.loadCodecTables(), (s) => this.saveStructures(s));
    this.statements = this.prepare();
    this.summaryStatements = hasChunkIndexTable(db) ? this.prepareSummaries() : undefined;
  }

  /** Opens an existing recording; refuses files that are not one, or are of a newer schema. */
  static open(path: string, options: OpenOptions = {}): RecordingStore {
    if (!existsSync(path)) {
      throw new InputError('no-such-file', `${path}: no such recording (record one with 'chronovisor run SCENARIO --out ${path}')`);
    }
    // SQLite would wait forever on a FIFO: only a regular file can be a recording.
    if (!statSync(path).isFile()) {
      throw new InputError('not-a-recording', `${path}: not a chronovisor recording (${statSync(path).isDirectory() ? 'a folder' : 'not a regular file'}); give a file written by 'chronovisor run'`);
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
    // A writer's settings (WAL) change the file: only once it is known to be a recording.
    if (readonly) {
      configureConnection(db);
    } else {
      configureWriter(db);
      addChunkIndex(db);
    }
    return new RecordingStore(db, path, readonly);
  }

  /** Creates a new recording file. The caller has checked that nothing is at `path`. */
  static create(path: string, simVersion: string): RecordingStore {
    assert(!existsSync(path), () => `create over an existing file ${path}`);
    const db = new Database(path);
    configureWriter(db);
    db.exec(DDL);
    addChunkIndex(db);
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
      chunkHeadsFrom: db.prepare('SELECT first_seq AS firstSeq, count, hash FROM chunks WHERE run = ? AND first_seq >= ? ORDER BY first_seq'),
      chunkHashAt: db.prepare('SELECT hash FROM chunks WHERE run = ? AND first_seq = ?'),
      checkpointAtOrBefore: db.prepare('SELECT seq, state FROM checkpoints WHERE run = ? AND seq <= ? ORDER BY seq DESC LIMIT 1'),
      checkpointSeqs: db.prepare('SELECT seq FROM checkpoints WHERE run = ? ORDER BY seq'),
      page: db.prepare('SELECT bytes FROM pages WHERE hash = ?'),
      hasPage: db.prepare('SELECT 1 FROM pages WHERE hash = ?'),
    };
  }

  private prepareSummaries() {
    const columns = 'first_seq AS firstSeq, kinds_lo AS kindsLo, kinds_hi AS kindsHi, domains, violations, text';
    return {
      forward: this.db.prepare(`SELECT ${columns} FROM chunk_index WHERE run = ? AND first_seq >= ? AND first_seq < ? ORDER BY first_seq LIMIT ?`),
      backward: this.db.prepare(`SELECT ${columns} FROM chunk_index WHERE run = ? AND first_seq <= ? AND first_seq >= ? ORDER BY first_seq DESC LIMIT ?`),
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

  /** Every run, in id order; a run whose record is damaged makes this throw (see runsOrDamage). */
  runs(): RunRow[] {
    return this.runsOrDamage().map((r) => {
      if ('damage' in r) throw r.damage;
      return r;
    });
  }

  /** Every run, in id order, a damaged record standing as the error that says what is wrong with it. */
  runsOrDamage(): (RunRow | DamagedRun)[] {
    return (this.statements.runs.all() as Record<string, unknown>[]).map((row) => {
      try {
        return toRunRow(row, this.path);
      } catch (error) {
        if (error instanceof RecordingDamage) return { id: Number(row.id), damage: error };
        throw error;
      }
    });
  }

  /** A run by id or by name; names the choices when there is no such run. */
  run(ref: string | number): RunRow {
    const text = String(ref);
    const row = /^\d+$/.test(text)
      ? this.statements.run.get(Number(text))
      : this.statements.runByName.get(text);
    if (row === undefined) {
      const known = this.runsOrDamage().map((r) => ('damage' in r ? `${r.id} (damaged)` : `${r.id} (${r.name})`)).join(', ') || 'none';
      throw new InputError('no-such-run', `${this.path}: no run '${text}'; runs here: ${known}`);
    }
    return toRunRow(row as Record<string, unknown>, this.path);
  }

  /** The newest run, the default for commands given no --run. */
  latestRun(): RunRow {
    const runs = this.runs();
    if (runs.length === 0) throw new InputError('no-such-run', `${this.path}: the recording has no runs yet`);
    return runs[runs.length - 1];
  }

  createRun(info: {
    name: string; parentRun: number | null; forkSeq: number | null; baseSeq: number; seed: string;
    scenario: string; scenarioPath: string; config: string; formats: RunFormats; simVersion: string; headHash: Buffer; writerPid: number;
  }): number {
    this.addFormatsColumn();
    const result = this.db.prepare(`INSERT INTO runs
      (name, parent_run, fork_seq, base_seq, seed, scenario, scenario_path, config, schema_version, formats, sim_version,
       status, head_hash, event_count, writer_pid)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'recording', ?, ?, ?)`).run(
      info.name, info.parentRun, info.forkSeq, info.baseSeq, info.seed, info.scenario, info.scenarioPath,
      info.config, SCHEMA_VERSION, JSON.stringify(info.formats), info.simVersion, info.headHash, info.baseSeq, info.writerPid);
    return Number(result.lastInsertRowid);
  }

  /** Recordings made before runs kept their formats lack the column; it is added when a run is added. */
  private addFormatsColumn(): void {
    const columns = this.db.prepare('PRAGMA table_info(runs)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'formats')) this.db.exec("ALTER TABLE runs ADD COLUMN formats TEXT NOT NULL DEFAULT '{}'");
  }

  finishRun(run: number, status: RunStatus, summary: string): void {
    this.db.prepare('UPDATE runs SET status = ?, summary = ?, writer_pid = NULL WHERE id = ?').run(status, summary, run);
  }

  /**
   * finishRun after the disk refused a write: again, once the WAL's frames are in the
   * database and the WAL restarts (written again from its start, in space it already has).
   * False if the disk refused that too.
   */
  finishRunWhenFull(run: number, status: RunStatus, summary: string): boolean {
    try {
      this.db.pragma('wal_checkpoint(RESTART)');
      this.finishRun(run, status, summary);
      return true;
    } catch (error) {
      if (isStorageFull(error)) return false;
      throw error;
    }
  }

  // ---- chunks -----------------------------------------------------------------------

  /**
   * The run and its ancestors, the run first. Parents are always older than their forks, and
   * the oldest ancestor starts at seq 0: a record that says otherwise is damaged (and would
   * otherwise send a reader round a loop).
   */
  lineage(run: RunRow): RunRow[] {
    const rows = [run];
    for (let last = run; last.parentRun !== null; last = rows[rows.length - 1]) {
      if (last.parentRun >= last.id || last.forkSeq === null || last.forkSeq < last.baseSeq) {
        throw damaged(this.path, last.id, undefined, `its record's parent run ${last.parentRun}, fork seq ${last.forkSeq} and base seq ${last.baseSeq} do not describe a fork`);
      }
      rows.push(this.run(last.parentRun));
    }
    const root = rows[rows.length - 1];
    if (root.baseSeq !== 0) throw damaged(this.path, root.id, 0, `its events start at seq ${root.baseSeq} but it names no parent run to hold those before`);
    return rows;
  }

  /** The run that stores the chunk holding `seq` for `run` (a fork's prefix is its parent's). */
  ownerOf(run: RunRow, seq: Seq): RunRow {
    return this.lineage(run).find((owner) => seq >= owner.baseSeq)!;
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

  /** The position, count and chain hash of the run's own chunks from `firstSeq` on, in order, without their bytes (a lazy iterator). */
  *chunkHeads(run: number, firstSeq: Seq = 0): Generator<{ firstSeq: Seq; count: number; hash: Buffer }> {
    yield* this.statements.chunkHeadsFrom.iterate(run, firstSeq) as Iterable<{ firstSeq: Seq; count: number; hash: Buffer }>;
  }

  /** The chain hash stored with the chunk that starts at `firstSeq`, if that chunk is there. */
  chunkHashAt(run: number, firstSeq: Seq): Buffer | undefined {
    return (this.statements.chunkHashAt.get(run, firstSeq) as { hash: Buffer } | undefined)?.hash;
  }

  /**
   * A chunk's events, once its bytes are proven to be the ones recorded: its hash is
   * recomputed over `previousHash` (the chain hash before it) and must equal the stored one,
   * and it must hold as many events as it says. Costs one sha256 of the raw chunk (see
   * `npm run bench -- store`); any damage is an InputError naming the run and seq.
   */
  decodeChunk(row: ChunkRow, previousHash: Uint8Array): DecodedChunk {
    const where = `the chunk of events ${row.firstSeq}..${row.firstSeq + row.count - 1}`;
    let raw: Buffer;
    try {
      raw = inflateChunk(row.bytes);
    } catch (error) {
      throw damaged(this.path, row.run, row.firstSeq, `${where} does not inflate (${(error as Error).message})`);
    }
    if (!chunkHash(previousHash, row.firstSeq, row.count, raw).equals(row.hash)) {
      throw damaged(this.path, row.run, row.firstSeq, `${where} does not match its hash: its bytes, or the chunk before it, changed`);
    }
    let events: Event[];
    try {
      events = this.codec.decodeChunk(raw);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      throw damaged(this.path, row.run, row.firstSeq, `${where} cannot be decoded (${error.message})`);
    }
    if (events.length !== row.count) {
      throw damaged(this.path, row.run, row.firstSeq, `${where} holds ${events.length} events, not ${row.count}`);
    }
    return { firstSeq: row.firstSeq, events };
  }

  /** Whether the recording has a chunk index this program reads (its runs may still lack rows). */
  get hasChunkIndex(): boolean {
    return this.summaryStatements !== undefined;
  }

  /**
   * Up to `limit` chunk index rows of the run's own chunks whose first seq lies in [from, to),
   * in seq order, or (direction -1) in [to, from] from the highest down. [] when the recording
   * has no index; a chunk without a row (recorded before the index) is simply not listed.
   */
  chunkSummaries(run: number, from: Seq, to: Seq, direction: 1 | -1, limit: number): ChunkSummaryRow[] {
    const statements = this.summaryStatements;
    if (statements === undefined) return [];
    return (direction > 0 ? statements.forward.all(run, from, to, limit) : statements.backward.all(run, from, to, limit)) as ChunkSummaryRow[];
  }

  // ---- checkpoints and pages ----------------------------------------------------------

  /** A checkpoint's state bytes (stored deflated). */
  checkpointAtOrBefore(run: number, seq: Seq): { seq: Seq; state: Buffer } | undefined {
    const row = this.statements.checkpointAtOrBefore.get(run, seq) as { seq: Seq; state: Buffer } | undefined;
    if (row === undefined) return undefined;
    try {
      return { seq: row.seq, state: inflateRawSync(row.state) };
    } catch (error) {
      throw damaged(this.path, run, row.seq, `the checkpoint at seq ${row.seq} does not inflate (${(error as Error).message})`);
    }
  }

  checkpointSeqs(run: number): Seq[] {
    return (this.statements.checkpointSeqs.all(run) as { seq: Seq }[]).map((r) => r.seq);
  }

  /** A stored page (or other blob), re-hashed as it is loaded: it must still be what its name says. */
  page(hash: Uint8Array): Buffer {
    const name = Buffer.from(hash).toString('hex').slice(0, 16);
    const row = this.statements.page.get(hash) as { bytes: Buffer } | undefined;
    if (row === undefined) {
      throw new InputError('damaged', `${this.path}: page ${name} is missing; the recording is damaged`);
    }
    if (!(row.bytes instanceof Uint8Array) || !createHash('sha256').update(row.bytes).digest().equals(hash)) {
      throw new InputError('damaged', `${this.path}: page ${name} is damaged: its bytes no longer hash to its name`);
    }
    return row.bytes;
  }

  hasPage(hash: Uint8Array): boolean {
    return this.statements.hasPage.get(hash) !== undefined;
  }
}

/**
 * A recording this long (in chunks) hands deflating and storing to the store thread, once it
 * is ready; the thread is started once a recording fills its first chunk, so that it is
 * ready by then.
 */
const THREAD_AFTER_CHUNKS = 8;

/**
 * Appends one run's events, chunk by chunk, each chunk in its own transaction. Events are
 * encoded as they come (only their bytes are kept). A long recording hands deflating and
 * storing to the store thread (see StoreThread) once it is ready; flush() waits for it.
 */
export class RunWriter {
  private readonly chunk: ChunkBuilder;
  private bufferFirstSeq: Seq;
  private readonly storer: ChunkStorer;
  private thread: StoreThread | null = null;
  private chunksWritten = 0;
  /** Chunks handed to the store thread (the rest the recording thread stored itself). */
  chunksByThread = 0;

  /**
   * @param prefix events of the parent between the aligned base and the fork point
   * @param head the chain hash before `baseSeq`
   */
  constructor(private readonly store: RecordingStore, readonly run: number, baseSeq: Seq, head: Buffer, prefix: Event[] = []) {
    assert(baseSeq % CHUNK_EVENTS === 0, () => `run base ${baseSeq} is not chunk-aligned`);
    this.bufferFirstSeq = baseSeq;
    this.chunk = new ChunkBuilder(store.codec);
    for (const event of prefix) this.chunk.add(event);
    this.storer = new ChunkStorer(store.db, run, baseSeq, head);
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
      thread.release();
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
      thread.release();
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
    if (this.thread === null && this.store.path !== ':memory:') {
      if (++this.chunksWritten === 1) StoreThread.start();
      else if (this.chunksWritten > THREAD_AFTER_CHUNKS) this.takeThread();
    }
    if (this.thread !== null) {
      this.thread.chunk(firstSeq, count, journal);
      this.chunksByThread++;
    } else {
      this.storer.commit({ firstSeq, count, raw: journalToChunk(journal), summary: journal.summary });
    }
  }

  /** Moves storing to the store thread if it is ready (it starts in the background if not). */
  private takeThread(): void {
    const thread = StoreThread.acquire();
    if (thread === undefined) return;
    thread.open(this.store.path, this.run, this.storer.committed, this.storer.head);
    for (const c of this.storer.takePending()) thread.checkpoint(c);
    this.thread = thread;
  }
}

/** Adds the chunk index to a recording that has none (one of another version is left alone, and not written). */
function addChunkIndex(db: Database.Database): void {
  const known = db.prepare("SELECT value FROM meta WHERE key = 'chunk_index_version'").get();
  if (known !== undefined) return;
  db.transaction(() => {
    db.exec(CHUNK_INDEX_DDL);
    db.prepare("INSERT INTO meta (key, value) VALUES ('chunk_index_version', ?)").run(String(CHUNK_INDEX_VERSION));
  })();
}

function checkFormat(db: Database.Database, path: string): void {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  const format = hasMeta ? (db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined) : undefined;
  if (format?.value !== FORMAT_MARKER) {
    throw new InputError('not-a-recording', `${path}: not a chronovisor recording (an SQLite database without chronovisor's tables); give a file written by 'chronovisor run'`);
  }
  const version = Number((db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value);
  const problem = formatProblem('its events', version, SCHEMA_VERSION);
  if (problem !== undefined) throw new InputError(version > SCHEMA_VERSION ? 'schema-newer' : 'schema-older', `${path}: ${problem}`);
}

/**
 * What to tell the user about a recording (or a part of it, `what`) in format `recorded`
 * when this chronovisor reads `reads`; undefined when they are the same. No format has a
 * migration yet: the way forward is to record the scenario again (or, for a newer
 * recording, to use a chronovisor that reads it).
 */
export function formatProblem(what: string, recorded: number, reads: number): string | undefined {
  if (recorded === reads) return undefined;
  return `${what}: recorded by format ${recorded}; this chronovisor reads ${reads}: re-record it${recorded > reads ? ', or upgrade chronovisor' : ''}`;
}

/** Damage found while reading a run: what, where, and the command that checks all of it. */
export class RecordingDamage extends InputError {
  /** @param seq where in the run, when the damage is in its events, checkpoints or pages */
  constructor(readonly path: string, readonly run: number, readonly seq: Seq | undefined, readonly what: string) {
    super('damaged', `${path}: run ${run} is damaged${seq === undefined ? '' : ` at seq ${seq}`}: ${what}; 'chronovisor verify ${path} --run ${run}' checks all of it`);
  }
}

export function damaged(path: string, run: number, seq: Seq | undefined, what: string): RecordingDamage {
  return new RecordingDamage(path, run, seq, what);
}

const RUN_STATUSES: readonly string[] = ['recording', 'complete', 'stopped', 'incomplete'];
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isJsonObject = (v: unknown): boolean => {
  try {
    const parsed: unknown = JSON.parse(v as string);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  } catch {
    return false;
  }
};

/** What each column of a run's record must hold; a row that breaks one is damaged, not a bug. */
const RUN_COLUMNS: [column: string, ok: (v: unknown) => boolean, expected: string][] = [
  ['name', (v) => typeof v === 'string', 'text'],
  ['parent_run', (v) => v === null || isCount(v), 'a run id or null'],
  ['fork_seq', (v) => v === null || isCount(v), 'a seq or null'],
  ['base_seq', (v) => isCount(v) && (v as number) % CHUNK_EVENTS === 0, 'a chunk-aligned seq'],
  ['seed', (v) => typeof v === 'string', 'text'],
  ['scenario', (v) => typeof v === 'string', 'text'],
  ['scenario_path', (v) => typeof v === 'string', 'text'],
  ['config', (v) => typeof v === 'string' && isJsonObject(v), 'a JSON object'],
  ['schema_version', (v) => v === SCHEMA_VERSION, `schema version ${SCHEMA_VERSION}`],
  ['sim_version', (v) => typeof v === 'string', 'text'],
  ['status', (v) => RUN_STATUSES.includes(v as string), RUN_STATUSES.join(', ')],
  ['head_hash', (v) => Buffer.isBuffer(v) && v.length === 32, 'a 32-byte hash'],
  ['event_count', isCount, 'a count'],
  ['writer_pid', (v) => v === null || isCount(v), 'a process id or null'],
  ['summary', (v) => typeof v === 'string' && isJsonObject(v), 'a JSON object'],
];

function toRunRow(r: Record<string, unknown>, path: string): RunRow {
  for (const [column, ok, expected] of RUN_COLUMNS) {
    if (!ok(r[column])) {
      const found = Buffer.isBuffer(r[column]) ? `${(r[column] as Buffer).length} bytes` : JSON.stringify(r[column])?.slice(0, 40);
      throw damaged(path, Number(r.id), undefined, `its record's ${column} holds ${found}, not ${expected}`);
    }
  }
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
    formats: parseFormats(r, path),
    simVersion: r.sim_version as string,
    status: r.status as RunStatus,
    headHash: r.head_hash as Buffer,
    eventCount: r.event_count as number,
    writerPid: r.writer_pid as number | null,
    summary: r.summary as string,
  };
}

/** A run's formats column: a JSON object of versions; absent in files made before runs kept them. */
function parseFormats(r: Record<string, unknown>, path: string): RunFormats {
  if (r.formats === undefined) return {};
  try {
    const formats: unknown = JSON.parse(r.formats as string);
    if (formats !== null && typeof formats === 'object' && Object.values(formats).every(Number.isInteger)) return formats as RunFormats;
  } catch {
    // Reported below, as any other damaged value.
  }
  throw new InputError('not-a-recording', `${path}: run ${String(r.id)}: its formats field (${JSON.stringify(r.formats)}) is damaged; it should be a JSON object of versions`);
}

function toChunkRow(r: Record<string, unknown>): ChunkRow {
  return { run: r.run as number, firstSeq: r.first_seq as number, count: r.count as number, hash: r.hash as Buffer, bytes: r.bytes as Buffer };
}
