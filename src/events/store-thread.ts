/**
 * The store thread, as its owner sees it: a worker (store-thread-worker.ts) that deflates,
 * hashes and stores a long run's chunks and checkpoints on a second connection while the
 * machine goes on. It changes when things reach the disk, never what: the bytes, hashes and
 * transactions are those of the recording thread's own ChunkStorer.
 *
 * A process keeps one store thread and lends it to one writer at a time: starting a worker
 * and its TypeScript loader takes a few hundred milliseconds, so it starts in the background
 * when the first long run asks for it, and the run goes on storing its own chunks until the
 * thread is ready; later runs find it ready.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { ChunkJournal } from './chunk-journal.ts';
import type { PendingCheckpoint } from './chunk-storer.ts';
import { StorageFull } from './errors.ts';
import type { Seq } from './schema.ts';
import {
  SIGNAL_FAILED, SIGNAL_HANDLED, SIGNAL_READY, SIGNAL_WORDS, type StoreThreadData, type StoreThreadMessage,
} from './store-thread-worker.ts';

const BOOT = new URL('./store-thread-boot.mjs', import.meta.url);
/** The thread's module beside this one, with this one's extension (.ts in src/, .js in dist/). */
const MODULE = new URL(`./store-thread-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
/** Chunks (and checkpoints) handed to the store thread and not yet stored, at most. */
const MAX_IN_FLIGHT = 16;
/** How long waitUntilReady waits for the thread to start (a few hundred ms on a quiet machine), and how often it looks. */
const READY_WAIT_MAX_MS = 60_000;
const READY_POLL_MS = 100;

export class StoreThread {
  /** The process's store thread, while it has not failed. */
  private static current: StoreThread | undefined;

  /**
   * The process's store thread if it is ready and no other writer has it (the caller then
   * has it until release); otherwise undefined, and the thread is started if there is none.
   * Throws if the thread failed to start.
   */
  static acquire(): StoreThread | undefined {
    const thread = StoreThread.start();
    thread.check();
    if (thread.busy || Atomics.load(thread.signal, SIGNAL_READY) === 0) return undefined;
    thread.busy = true;
    return thread;
  }

  /** The process's store thread, started (in the background) if there is none. */
  static start(): StoreThread {
    return (StoreThread.current ??= new StoreThread());
  }

  /** Blocks until the store thread has started (for a caller that knows a long run comes); throws if it failed to. */
  static waitUntilReady(): void {
    const thread = StoreThread.start();
    for (let waited = 0; Atomics.load(thread.signal, SIGNAL_READY) === 0; waited += READY_POLL_MS) {
      thread.check();
      if (waited >= READY_WAIT_MAX_MS) throw new Error(`the store thread did not start within ${READY_WAIT_MAX_MS / 1000} s`);
      Atomics.wait(thread.signal, SIGNAL_READY, 0, READY_POLL_MS);
    }
  }

  private readonly worker: Worker;
  private readonly signal = new Int32Array(new SharedArrayBuffer(SIGNAL_WORDS * 4));
  /** The chain hash after the messages handled, written by the thread. */
  private readonly head = new Uint8Array(new SharedArrayBuffer(32));
  private readonly errors: MessagePort;
  private busy = false;
  private sent = 0;
  /** [message count after which it is stored, committed seq then], for chunk messages in flight. */
  private readonly inFlight: [number, Seq][] = [];
  private committed: Seq = 0;

  private constructor() {
    const { port1, port2 } = new MessageChannel();
    this.errors = port1;
    const data: StoreThreadData = { storeThread: true, module: MODULE, signal: this.signal.buffer as SharedArrayBuffer, head: this.head.buffer as SharedArrayBuffer, errors: port2 };
    // No execArgv: the boot module registers the TypeScript loader itself when the thread's
    // module is TypeScript, whether the parent runs under `node --import tsx` or bin/chronovisor.
    this.worker = new Worker(BOOT, { workerData: data, transferList: [port2], execArgv: [] });
    // The thread never keeps a process alive: every run waits for its own writes.
    this.worker.unref();
  }

  /** Starts storing a run whose first `committed` events are stored, with chain hash `head` after them. */
  open(path: string, run: number, committed: Seq, head: Uint8Array): void {
    this.committed = committed;
    this.inFlight.length = 0;
    this.post({ t: 'open', path, run, committed, head: Uint8Array.from(head) });
  }

  /** Events of the open run stored so far. */
  get committedSeq(): Seq {
    const done = Atomics.load(this.signal, SIGNAL_HANDLED);
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
    this.post({ t: 'chunk', firstSeq, count, journal: { count: journal.count, words, bytes, stepPrefix: journal.stepPrefix, summary: journal.summary } }, [words.buffer, bytes.buffer]);
    this.inFlight.push([this.sent, firstSeq + count]);
    this.waitFor(this.sent - MAX_IN_FLIGHT);
  }

  checkpoint(c: PendingCheckpoint): void {
    // Exactly its bytes, owned by the thread (a view would take its whole buffer along).
    const state = new Uint8Array(c.state);
    const pages = c.pages.map(([hash, bytes]): [Uint8Array, Uint8Array] => [new Uint8Array(hash), new Uint8Array(bytes)]);
    this.post({ t: 'checkpoint', checkpoint: { seq: c.seq, state, pages } }, [state.buffer, ...pages.flatMap(([h, b]) => [h.buffer as ArrayBuffer, b.buffer as ArrayBuffer])]);
  }

  /** Waits until everything sent is stored, closes the run's connection and lends the thread out again. */
  release(): void {
    try {
      this.post({ t: 'close' });
      this.waitFor(this.sent);
    } finally {
      this.busy = false;
    }
  }

  private post(message: StoreThreadMessage, transfer: ArrayBuffer[] = []): void {
    this.check();
    this.worker.postMessage(message, transfer);
    this.sent++;
  }

  /** Blocks until the thread has handled `count` messages. */
  private waitFor(count: number): void {
    for (let done = Atomics.load(this.signal, SIGNAL_HANDLED); done < count; done = Atomics.load(this.signal, SIGNAL_HANDLED)) {
      this.check();
      Atomics.wait(this.signal, SIGNAL_HANDLED, done, 1000);
    }
    this.check();
  }

  /** Throws the thread's failure, if it failed; the process then starts a new thread for the next run. */
  private check(): void {
    if (Atomics.load(this.signal, SIGNAL_FAILED) === 0) return;
    const failure = receiveMessageOnPort(this.errors)?.message as { stack: string; message: string; full: boolean } | undefined;
    if (StoreThread.current === this) StoreThread.current = undefined;
    this.worker.terminate().catch(() => {});
    if (failure?.full) throw new StorageFull(failure.message);
    throw new Error(`the store thread failed: ${failure?.stack ?? 'unknown error'}`);
  }
}
