/**
 * Progress on stderr for long commands, only when stderr is a terminal (never in pipes,
 * logs or tests).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

const silent: Progress = { update: () => {}, stop: () => {} };

/** A bar when the total is known, a counter line when it is not. */
export function startProgress(label: string, total?: number): Progress {
  if (!process.stderr.isTTY) return silent;
  const format = total === undefined
    ? `${label} {value} events | tick {tick} | {rate} events/s`
    : `${label} [{bar}] {percentage}% | {value}/{total} events | {rate} events/s`;
  const bar = new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 5 });
  const started = process.hrtime.bigint();
  bar.start(total ?? 0, 0, { tick: 0, rate: 0 });
  return {
    update(done, fields = {}) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      bar.update(done, { ...fields, rate: seconds > 0 ? Math.round(done / seconds) : 0 });
    },
    stop() { bar.stop(); },
  };
}
