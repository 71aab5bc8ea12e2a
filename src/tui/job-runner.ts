/**
 * Background work in slices. One foreground job at a time - the search or jump the user is
 * waiting for - and one background job, indexing the run, which runs only when nothing is
 * in the foreground. Each slice takes at most SLICE_MS and is queued behind pending input,
 * so a key is never kept waiting by a scan.
 */
import type { Scheduler } from './scheduler.ts';

/** How long one slice of background work may take, in milliseconds. */
export const SLICE_MS = 12;

export interface Job {
  /** Works until `deadline` (on the scheduler's clock); true when the job is over. */
  step(deadline: number, now: () => number): boolean;
}

export interface Foreground {
  job: Job;
  /** What it is doing, for the progress note. */
  label: string;
  /** 0..1, for the progress note. */
  progress(): number;
  /** Called once when the job is over (not when it is cancelled). */
  finish(): void;
}

export class JobRunner {
  private foreground: Foreground | undefined;
  private scheduled = false;
  private stopped = false;

  /**
   * @param background one slice of the background job; true when it has nothing left to do
   * @param sliced called after each slice with whether the foreground job finished in it
   */
  constructor(
    private readonly scheduler: Scheduler,
    private readonly background: { done(): boolean; step(deadline: number, now: () => number): void },
    private readonly sliced: (foregroundFinished: boolean, wasForeground: boolean) => void,
  ) {}

  readonly now = (): number => this.scheduler.now();

  /** The job the user waits for, if any. */
  get current(): Foreground | undefined {
    return this.foreground;
  }

  /** Starts a job the user waits for, replacing any other, and runs its first slice at once. */
  start(foreground: Foreground): void {
    this.foreground = foreground;
    if (foreground.job.step(this.now() + SLICE_MS, this.now)) this.finish();
    this.schedule();
  }

  /** Drops the foreground job; returns it, if there was one. */
  cancel(): Foreground | undefined {
    const dropped = this.foreground;
    this.foreground = undefined;
    return dropped;
  }

  /** Queues a slice if there is work (after a live run grew, for instance). */
  schedule(): void {
    if (this.stopped || this.scheduled || (this.foreground === undefined && this.background.done())) return;
    this.scheduled = true;
    this.scheduler.defer(() => this.pump());
  }

  /** No more slices: the store behind the jobs may be closed after this. */
  stop(): void {
    this.stopped = true;
    this.foreground = undefined;
  }

  private finish(): void {
    const done = this.foreground!;
    this.foreground = undefined;
    done.finish();
  }

  private pump(): void {
    this.scheduled = false;
    if (this.stopped) return;
    const deadline = this.now() + SLICE_MS;
    if (this.foreground) {
      const finished = this.foreground.job.step(deadline, this.now);
      if (finished) this.finish();
      this.sliced(finished, true);
    } else if (!this.background.done()) {
      this.background.step(deadline, this.now);
      this.sliced(false, false);
    }
    this.schedule();
  }
}
