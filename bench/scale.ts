/**
 * The growth table (issue 14): the long workload (recordings/long.yaml) recorded at 1M, 10M
 * and 100M events (CHRONOVISOR_BENCH_SIZES=1000000,10000000 for others; 1B added with
 * CHRONOVISOR_BENCH_BIG=1), and for each size every figure the issue lists, with its goal.
 * Commands run as a user runs them (bin/chronovisor in a child process, its peak RSS from
 * /usr/bin/time; `state`, `log` and `who-wrote` three times, see SHORT_RUNS), so the memory
 * figures are each command's own; seeks are timed in this
 * process on a fresh store, and the TUI by bench/tui.ts driving the real app.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordingStore } from '../src/events/store.ts';
import { firstDivergence } from '../src/replay/diff.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { measureSeeks, type Figure } from './store.ts';
import { frameQueryFigures, provenanceFigures, type ProvenanceTarget } from './forensics.ts';
import { ForensicIndexStore } from '../src/events/forensic-index.ts';
import type { EventOf } from '../src/events/schema.ts';
import { PAGE_SIZE } from '../src/core/hypervisor/config.ts';
import { ForensicSession } from '../src/replay/forensics/session.ts';
import { benchTui } from './tui.ts';
import { envCounts } from './env.ts';

const BIN = fileURLToPath(new URL('../bin/chronovisor', import.meta.url));
const LONG = fileURLToPath(new URL('../recordings/long.yaml', import.meta.url));
const MB = 2 ** 20;

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number): string => `${Math.round(bytes / MB)} MB`;

/** The sizes to record: the three, or CHRONOVISOR_BENCH_SIZES; 1B more with CHRONOVISOR_BENCH_BIG=1. */
export function scaleSizes(env: NodeJS.ProcessEnv = process.env): number[] {
  const sizes = envCounts(env, 'CHRONOVISOR_BENCH_SIZES', [1_000_000, 10_000_000, 100_000_000], 10_000, '1000000,10000000');
  return env.CHRONOVISOR_BENCH_BIG === '1' ? [...sizes, 1_000_000_000] : sizes;
}

interface Timed { seconds: number; rssBytes: number }

/** `chronovisor ARGS` in a child process: its wall time and peak RSS; throws unless it exits as expected. */
function chronovisor(args: string[], { discardOutput = false } = {}): Timed {
  const child = spawnSync('/usr/bin/time', ['-f', 'time %e %M', process.execPath, BIN, ...args], {
    encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', discardOutput ? 'ignore' : 'pipe', 'pipe'],
  });
  const measured = /time ([\d.]+) (\d+)\s*$/.exec(child.stderr);
  if (child.status !== 0 || measured === null) {
    throw new Error(`chronovisor ${args.join(' ')} exited ${child.status}:\n${child.stderr}`);
  }
  return { seconds: Number(measured[1]), rssBytes: Number(measured[2]) * 1024 };
}

/**
 * Commands of a second or less, run this many times: their peak RSS is the largest of the
 * runs, their time the median. One reading of such a command's ~80 MB moves by up to 7 MB
 * from run to run of the same command on the same file (`state` of 10M events: 73-80 MB
 * in five runs), as V8's collections fall, which a single reading would count as growth.
 */
const SHORT_RUNS = 3;

/** `chronovisor ARGS` SHORT_RUNS times: the median time and the largest peak RSS. */
function shortCommand(args: string[]): Timed {
  const runs = Array.from({ length: SHORT_RUNS }, () => chronovisor(args));
  const seconds = runs.map((r) => r.seconds).sort((a, b) => a - b)[Math.floor(SHORT_RUNS / 2)];
  return { seconds, rssBytes: Math.max(...runs.map((r) => r.rssBytes)) };
}

/** The rows of one size. */
function measureSize(dir: string, wanted: number): { figures: Figure[]; rss: number[] } {
  const db = join(dir, `long-${wanted}.db`);
  const label = (name: string): string => `${fmt(wanted)}: ${name}`;
  process.stderr.write(`recording ${fmt(wanted)} events...\n`);
  const recorded = chronovisor(['run', LONG, '--max-events', String(wanted), '--out', db]);
  const bytes = statSync(db).size;

  const store = RecordingStore.open(db, { readonly: true });
  const run = store.latestRun();
  const events = run.eventCount;
  process.stderr.write('seeking...\n');
  const seeks = measureSeeks(store, run.id, events);
  store.close();
  const stateAt = Math.floor(events * 0.61);
  const state = shortCommand(['state', db, '--at', String(stateAt)]);
  const log = shortCommand(['log', db, '--from', String(Math.floor(events * 0.83)), '--limit', '1000']);

  process.stderr.write('verifying...\n');
  const verify = chronovisor(['verify', db, '--workers', '2']);
  process.stderr.write('exporting...\n');
  const exported = chronovisor(['export', 'jsonl', db, '--out', '-'], { discardOutput: true });

  // B: run A forked at 90% with another quantum, run for the remaining 10%.
  process.stderr.write('forking and diffing...\n');
  const forkAt = Math.floor(events * 0.9);
  chronovisor(['fork', db, '--run', String(run.id), '--at', String(forkAt), '--set', 'quantum=3', '--events', String(events - forkAt)]);
  const diffStore = RecordingStore.open(db, { readonly: true });
  const b = diffStore.latestRun();
  const t = performance.now();
  const divergedAt = firstDivergence(new Timeline(diffStore, diffStore.run(run.id)), new Timeline(diffStore, b));
  const divergenceMs = performance.now() - t;
  diffStore.close();
  const diff = chronovisor(['diff', db, String(run.id), String(b.id)]);

  process.stderr.write('indexing and asking forensic questions...\n');
  const indexed = chronovisor(['index', db]);
  const forensics = forensicFigures(db, run.id, label, events);
  const whoWroteCommand = shortCommand(['who-wrote', db, `mfn:${forensics.frame}/64`, '--at', String(Math.floor(events * 0.7)), '--run', String(run.id)]);

  process.stderr.write('driving the TUI...\n');
  const tuiCopy = join(dir, 'tui.db');
  copyFileSync(db, tuiCopy);
  const tui = new Map(benchTui(events, { CHRONOVISOR_BENCH_TUI_DB: tuiCopy }).map((f) => [f.name.trim(), f.value]));
  const tuiValue = (prefix: string): string => [...tui].find(([name]) => name.startsWith(prefix))?.[1] ?? 'n/a';
  const keyP99 = Number(tuiValue('all ').split(' / ')[1]);
  const rareText = tuiValue('/canary-confined Enter (rare text, far)').split(' | ')[1]?.split(' / ')[1];
  rmSync(tuiCopy, { force: true });

  const rssGoal = '<= 300 MB';
  const rss = (name: string, bytes: number): Figure => ({ name: label(`peak RSS, ${name}`), value: mb(bytes), goal: rssGoal, ok: bytes <= 300 * MB });
  const rate = events / recorded.seconds;
  const verifyRate = events / verify.seconds;
  const figures: Figure[] = [
    { name: label('events recorded'), value: fmt(events) },
    { name: label('recording time (s) / events/s'), value: `${recorded.seconds.toFixed(1)} / ${fmt(rate)}` },
    { name: label('file size / bytes per event'), value: `${mb(bytes)} / ${(bytes / events).toFixed(2)}` },
    rss('recording', recorded.rssBytes),
    { name: label('seek p50 / p99, cold (ms)'), value: `${seeks.cold.p50.toFixed(1)} / ${seeks.cold.p99.toFixed(1)}`, goal: 'p99 <= 50', ok: seeks.cold.p99 <= 50 },
    { name: label('seek p50 / p99, warm (ms)'), value: `${seeks.warm.p50.toFixed(1)} / ${seeks.warm.p99.toFixed(1)}`, goal: 'p99 <= 5', ok: seeks.warm.p99 <= 5 },
    { name: label('state --at 61%, whole command (s)'), value: state.seconds.toFixed(2) },
    rss('state', state.rssBytes),
    rss('log --from 83% --limit 1000', log.rssBytes),
    { name: label('TUI open: indexing the run for markers (s)'), value: tuiValue('indexing'), goal: '<= 1', ok: Number(tuiValue('indexing')) <= 1 },
    { name: label('TUI key p50 / p99 / max (ms)'), value: tuiValue('all '), goal: 'p99 <= 50', ok: keyP99 <= 50 },
    { name: label('TUI slowest key'), value: tuiValue('slowest key') },
    { name: label('TUI search for rare text far away, result p99 (ms)'), value: rareText ?? 'n/a', goal: '<= 1000', ok: Number(rareText) <= 1000 },
    { name: label('TUI RSS max during the keys'), value: tuiValue('RSS max'), goal: rssGoal, ok: Number.parseInt(tuiValue('RSS max'), 10) <= 300 },
    { name: label('verify, 2 workers: time (s) / events/s'), value: `${verify.seconds.toFixed(1)} / ${fmt(verifyRate)}`, goal: '>= 2,000,000 events/s', ok: verifyRate >= 2_000_000 },
    rss('verify (parent; each worker is a thread of it)', verify.rssBytes),
    { name: label('export jsonl: time (s) / events/s'), value: `${exported.seconds.toFixed(1)} / ${fmt(events / exported.seconds)}` },
    rss('export jsonl', exported.rssBytes),
    // The fork starts at the step boundary at or before forkAt, with its input event: the first divergence.
    { name: label(`first divergence of runs apart from 90% (seq ${divergedAt ?? 'none'}, fork at ${b.forkSeq}), in process (ms)`), value: divergenceMs.toFixed(1), goal: '<= 1000', ok: divergedAt === b.forkSeq && divergenceMs <= 1000 },
    { name: label('diff, whole command (s)'), value: diff.seconds.toFixed(2) },
    rss('diff', diff.rssBytes),
    { name: label('forensic index: build time (s) / bytes per event'), value: `${indexed.seconds.toFixed(1)} / ${forensics.indexBytesPerEvent.toFixed(2)}` },
    rss('index', indexed.rssBytes),
    ...forensics.figures,
    rss('who-wrote', whoWroteCommand.rssBytes),
  ];
  rmSync(db, { force: true });
  rmSync(`${db}-wal`, { force: true });
  rmSync(`${db}-shm`, { force: true });
  return { figures, rss: [recorded.rssBytes, state.rssBytes, log.rssBytes, verify.rssBytes, exported.rssBytes, diff.rssBytes, indexed.rssBytes, whoWroteCommand.rssBytes] };
}

/**
 * The forensic queries on the indexed recording, in this process as bench/forensics.ts asks
 * them (issue 13's goals: <= 100 ms at 10M and <= 1 s at 100M for who-wrote and history,
 * <= 2 s for provenance at 10M), provenance of datagrams bob's VF wrote by DMA.
 */
function forensicFigures(db: string, runId: number, label: (name: string) => string, events: number): { figures: Figure[]; indexBytesPerEvent: number; frame: number } {
  const store = RecordingStore.open(db, { readonly: true });
  try {
    const run = store.run(runId);
    const bob = [...new ForensicSession(store, run).domainNames].find(([, name]) => name === 'bob')?.[0];
    const timeline = new Timeline(store, run);
    const targets: ProvenanceTarget[] = [];
    // The first datagram received after each tenth of the run.
    for (let tenth = 1; tenth <= 9; tenth++) {
      let request: EventOf<'dma.request'> | undefined;
      for (const [seq, e] of timeline.iterate(Math.floor((events * tenth) / 10), events, { cache: false })) {
        if (e.kind === 'dma.request' && e.write && e.dom === bob && e.fault === 0 && e.len >= 32) request = e; // a frame, not a descriptor
        else if (request !== undefined && e.kind === 'mem.write' && e.mfn === Math.floor(request.hpa / PAGE_SIZE)) {
          const offset = request.hpa % PAGE_SIZE;
          targets.push({ at: seq + 1, mfn: e.mfn, offset, length: Math.min(request.len, PAGE_SIZE - offset) });
          break;
        }
      }
    }
    const goal = events <= 10_000_000 ? 100 : 1000;
    const figures = [
      ...frameQueryFigures(store, run, label('forensics'), goal),
      ...provenanceFigures(store, run, targets, label('forensics'), 'provenance of a datagram bob received by DMA', events <= 10_000_000 ? 2000 : undefined),
    ];
    const bytes = new ForensicIndexStore(store.db).status(runId)?.bytes ?? 0;
    return { figures, indexBytesPerEvent: bytes / events, frame: targets[0]?.mfn ?? 0 };
  } finally {
    store.close();
  }
}

export function benchScale(sizes = scaleSizes()): Figure[] {
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-scale-bench-'));
  try {
    const measured = sizes.map((size) => measureSize(dir, size));
    const figures = measured.flatMap((m) => m.figures);
    if (measured.length >= 2) {
      // Flat memory: each command's peak RSS at the largest size against the one before.
      const [before, last] = measured.slice(-2).map((m) => m.rss);
      const growth = Math.max(...last.map((bytes, i) => Math.abs(bytes / before[i] - 1)));
      figures.push({
        name: `peak RSS of record, state, log, verify, export, diff, index, who-wrote: largest change from ${fmt(sizes.at(-2)!)} to ${fmt(sizes.at(-1)!)}`,
        value: `${(growth * 100).toFixed(0)}%`, goal: '<= 10%', ok: growth <= 0.1,
      });
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
