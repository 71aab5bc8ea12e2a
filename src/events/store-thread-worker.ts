/**
 * The store thread's program: a ChunkStorer on its own connection, fed by messages in order
 * (see store-thread.ts for the other side). It writes a chunk's msgpack from its journal
 * (journalToChunk), deflates it, hashes it and stores it, so the recording thread only
 * encodes events. After each message it counts it in the shared signal and writes the chain
 * head; a failure sets the failed word, is posted on the error port, and every later message
 * is only counted.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { journalToChunk, type ChunkJournal } from './chunk-journal.ts';
import { ChunkStorer, configureWriter, type PendingCheckpoint } from './chunk-storer.ts';
import { isStorageFull } from './errors.ts';
import type { Seq } from './schema.ts';

/** Words of the shared signal: messages handled, failed (0/1), ready (0/1). */
export const SIGNAL_HANDLED = 0;
export const SIGNAL_FAILED = 1;
export const SIGNAL_READY = 2;
export const SIGNAL_WORDS = 3;

/** What a store thread is started with (workerData). */
export interface StoreThreadData {
  storeThread: true;
  /** This module's URL, which the boot loads: TypeScript from src/, JavaScript once built. */
  module: string;
  /** SIGNAL_WORDS Int32 words. */
  signal: SharedArrayBuffer;
  /** 32 bytes: the chain hash after the messages handled. */
  head: SharedArrayBuffer;
  errors: MessagePort;
}

export type StoreThreadMessage =
  /** Start storing run `run` of the recording at `path`, after `committed` events whose chain hash is `head`. */
  | { t: 'open'; path: string; run: number; committed: Seq; head: Uint8Array }
  | { t: 'chunk'; firstSeq: Seq; count: number; journal: ChunkJournal }
  | { t: 'checkpoint'; checkpoint: PendingCheckpoint }
  /** The run is done: close its connection (the thread waits for the next run). */
  | { t: 'close' };

/** Serves one thread's messages. A class of its own so that tests drive it without a thread. */
export class StoreThreadServer {
  private readonly signal: Int32Array;
  private readonly head: Uint8Array;
  private db: Database.Database | undefined;
  private storer: ChunkStorer | undefined;

  constructor(private readonly data: StoreThreadData) {
    this.signal = new Int32Array(data.signal);
    this.head = new Uint8Array(data.head);
  }

  handle(message: StoreThreadMessage): void {
    if (Atomics.load(this.signal, SIGNAL_FAILED) === 0) {
      try {
        this.apply(message);
      } catch (error) {
        this.fail(error);
      }
    }
    Atomics.add(this.signal, SIGNAL_HANDLED, 1);
    Atomics.notify(this.signal, SIGNAL_HANDLED);
  }

  /** Marks the thread failed and says why on the error port; the owner stops using it. */
  fail(error: unknown): void {
    // The reason first: the owner reads it as soon as it sees the failed word.
    this.data.errors.postMessage({ stack: String((error as Error)?.stack ?? error), message: String((error as Error)?.message ?? error), full: isStorageFull(error) });
    Atomics.store(this.signal, SIGNAL_FAILED, 1);
    this.db?.close();
    this.db = undefined;
    this.storer = undefined;
  }

  private apply(message: StoreThreadMessage): void {
    switch (message.t) {
      case 'open': {
        if (this.db !== undefined) throw new Error('open while a run is open');
        this.db = new Database(message.path, { fileMustExist: true });
        configureWriter(this.db);
        this.storer = new ChunkStorer(this.db, message.run, message.committed, Buffer.from(message.head));
        break;
      }
      case 'chunk':
        this.openStorer().commit({ firstSeq: message.firstSeq, count: message.count, raw: journalToChunk(message.journal), summary: message.journal.summary });
        break;
      case 'checkpoint':
        this.openStorer().checkpoint(message.checkpoint);
        break;
      case 'close':
        this.db?.close();
        this.db = undefined;
        this.storer = undefined;
        return;
    }
    this.head.set(this.storer!.head);
  }

  private openStorer(): ChunkStorer {
    if (this.storer === undefined) throw new Error('a chunk or checkpoint came with no run open');
    return this.storer;
  }
}

/** Started as a store thread (store-thread-boot.mjs imports this module): serve the parent. */
if (!isMainThread && (workerData as Partial<StoreThreadData> | null)?.storeThread === true) {
  const data = workerData as StoreThreadData;
  const server = new StoreThreadServer(data);
  parentPort!.on('message', (message: StoreThreadMessage) => server.handle(message));
  const signal = new Int32Array(data.signal);
  Atomics.store(signal, SIGNAL_READY, 1);
  Atomics.notify(signal, SIGNAL_READY);
}
