/**
 * Where background work runs. The TUI never blocks a keystroke on a long scan: work is cut
 * into slices of a few milliseconds and each slice is queued behind pending input. Tests and
 * the benchmark use the manual scheduler, which runs the queue to the end on request, so a
 * frame never depends on how fast the machine is.
 */

export interface Scheduler {
  /** Runs `task` soon, after input that is already waiting has been handled. */
  defer(task: () => void): void;
  /** Runs `task` after about `ms` milliseconds (so that a frame is drawn before long work). */
  after(ms: number, task: () => void): void;
  /** Milliseconds from an arbitrary origin, to cut work into slices. */
  now(): number;
}

export const realScheduler: Scheduler = {
  defer: (task) => { setImmediate(task); },
  after: (ms, task) => { setTimeout(task, ms); },
  now: () => performance.now(),
};

/** A queue that runs only when told to: deterministic frames for tests and benchmarks. */
export class ManualScheduler implements Scheduler {
  private queue: (() => void)[] = [];

  defer(task: () => void): void {
    this.queue.push(task);
  }

  after(_ms: number, task: () => void): void {
    this.queue.push(task);
  }

  now(): number {
    return performance.now();
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Runs queued tasks, and the tasks they queue, until none is left; returns how many ran. */
  runAll(tasksMax = 10_000_000): number {
    let ran = 0;
    while (this.queue.length > 0 && ran < tasksMax) {
      this.queue.shift()!();
      ran++;
    }
    return ran;
  }
}
