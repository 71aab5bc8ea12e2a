/**
 * TUI benchmark (issue 5): on a 10-million-event recording, drives the real app (Ink,
 * rendered into an in-memory terminal of 120x40) with a scripted sequence of keys and
 * measures, per key, the time until the frame that answers it is written:
 * - "key": the first frame after the key (what the user sees at once; a long search shows
 *   its progress here);
 * - "result": the frame once the work the key started is over (a search's match).
 * Background work runs on the manual scheduler, so "result" is the full cost of the work.
 * Also: how long indexing the run takes (it runs in the background while keys work) and
 * the process's resident memory.
 *
 * CHRONOVISOR_BENCH_EVENTS sets the size (default 10,000,000); CHRONOVISOR_BENCH_TUI_DB
 * reuses an existing recording instead of making one (its newest run is used).
 */
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createElement } from 'react';
import { render } from 'ink';
import { RecordingStore } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { recordScenario } from '../src/replay/recorder.ts';
import { forkRun } from '../src/replay/fork.ts';
import { App } from '../src/tui/App.tsx';
import { keepHeapNearLive } from '../src/cli/heap.ts';
import { TuiController, type TuiServices } from '../src/tui/controller.ts';
import { ManualScheduler } from '../src/tui/scheduler.ts';
import { PLAIN } from '../src/tui/theme.ts';
import type { Figure } from './store.ts';

const SIZE = { columns: 120, rows: 40 };

/**
 * A vanilla-profile mix with every kind of marker: scrub-between-owners violations (carol
 * gets frames bob gave back unscrubbed), faults (bob reads a frame he gave back), ownership
 * churn, an x86 guest whose loop exits on CPUID, and a few rare events far apart: dom0 reads
 * alice's canary at three ticks spread over the run (a search has to go a long way for them).
 */
export function tuiScenario(events: number): string {
  const times = Math.ceil(events / 10);
  // About 0.21 ticks per event in this mix: the reads land near 15%, 55% and 90% of the run.
  const tick = (fraction: number): number => Math.floor(events * 0.21 * fraction);
  const reads = [0.15, 0.55, 0.9].map((f) => `    - { at: ${tick(f)}, op: foreign_read, domain: alice, gfn: 1, offset: 0, len: 16 }`).join('\n');
  return `
seed: tui-bench
machine: { memoryMiB: 16, pcpus: 2, profile: vanilla, quantum: 4, timeslice: 500 }
dom0:
  memoryKiB: 256
  actions:
${reads}
domains:
  - name: alice
    memoryKiB: 64
    guest:
      ops:
        - canary: { gpa: 0x1000, secret: "alice: card 4929" }
        - repeat:
            times: ${times}
            ops:
              - write: { gpa: 0x2000, text: "balance: 1000000" }
              - read: { gpa: 0x2000, len: 16 }
              - yield
  - name: bob
    memoryKiB: 64
    guest:
      ops:
        - repeat:
            times: ${times}
            ops:
              - hypercall: { op: populate_physmap, gfn: 100, count: 1 }
              - write: { gpa: 0x64000, text: "bob secret" }
              - hypercall: { op: decrease_reservation, gfns: [100] }
              - read: { gpa: 0x64000, len: 4 }
  - name: carol
    memoryKiB: 64
    guest:
      ops:
        - repeat:
            times: ${times}
            ops:
              - hypercall: { op: populate_physmap, gfn: 200, count: 1 }
              - read: { gpa: 0xc8000, len: 16 }
              - hypercall: { op: decrease_reservation, gfns: [200] }
  - name: erin
    memoryKiB: 128
    paging: ept
    guest:
      x86:
        asm: |
          bits 32
          org 0x1000
          start:
            mov esi, 0
          again:
            add esi, 1
            mov [0x8000], esi
            mov eax, 0
            cpuid
            jmp again
`;
}

function record(dir: string, events: number): string {
  const text = tuiScenario(events);
  const yamlPath = join(dir, 'tui-bench.yaml');
  writeFileSync(yamlPath, text);
  const path = join(dir, 'tui-bench.db');
  const store = RecordingStore.create(path, 'bench');
  try {
    recordScenario(store, parseScenario(text, yamlPath), {
      name: 'tui-bench', scenarioText: text, scenarioPath: yamlPath, config: '{}', simVersion: 'bench', writerPid: process.pid,
    }, { maxEvents: events });
  } finally {
    store.close();
  }
  return path;
}

class Terminal extends EventEmitter {
  readonly columns = SIZE.columns;
  readonly rows = SIZE.rows;
  isTTY = false;
  frames = 0;
  lastFrameAt = 0;
  write = (): boolean => {
    this.frames++;
    this.lastFrameAt = performance.now();
    return true;
  };
}

class Keyboard extends EventEmitter {
  isTTY = true;
  private data: string | null = null;
  press(data: string): void { this.data = data; this.emit('readable'); }
  read(): string | null { const d = this.data; this.data = null; return d; }
  setEncoding(): void {}
  setRawMode(): void {}
  resume(): void {}
  pause(): void {}
  ref(): void {}
  unref(): void {}
}

const K = { left: '\x1b[D', right: '\x1b[C', up: '\x1b[A', down: '\x1b[B', sLeft: '\x1b[1;2D', sRight: '\x1b[1;2C', pgUp: '\x1b[5~', pgDn: '\x1b[6~', home: '\x1b[H', end: '\x1b[F', enter: '\r', esc: '\x1b', tab: '\t' };

type Step = [label: string, key: string];

const times = (n: number, step: Step): Step[] => Array.from({ length: n }, () => step);
const typed = (label: string, text: string): Step[] => [...text].map((ch): Step => [`${label} (typing)`, ch]);

/** The scripted session: every kind of move, forwards and backwards, far and near. */
function script(length: number): Step[] {
  const middle = String(Math.floor(length / 2));
  const late = String(Math.floor(length * 0.77) + 11);
  return [
    ...times(30, ['l (step)', 'l']), ...times(30, ['h (step back)', 'h']),
    ...times(10, ['PgDn (+100)', K.pgDn]), ...times(10, ['PgUp (-100)', K.pgUp]),
    ...times(10, ['L (+1000)', 'L']), ...times(10, ['H (-1000)', 'H']),
    ...times(5, ['S-right (+1000)', K.sRight]), ...times(5, ['S-left (-1000)', K.sLeft]),
    ['End', K.end], ...times(20, ['h (step back)', 'h']), ['Home', K.home], ['G (end)', 'G'], ['g (start)', 'g'],
    [': (prompt)', ':'], ...typed(':', middle), [':N Enter (jump)', K.enter],
    ...times(30, ['h (step back)', 'h']), ...times(30, ['l (step)', 'l']), ...times(5, ['<- (step back)', K.left]),
    [': (prompt)', ':'], ...typed(':', late), [':N Enter (jump)', K.enter], ...times(10, ['H (-1000)', 'H']),
    ...times(5, ['] (next violation)', ']']), ...times(5, ['[ (previous violation)', '[']),
    ...times(5, ['E (next VM exit)', 'E']), ...times(5, ['e (previous VM exit)', 'e']),
    ...times(3, ['} (next fault)', '}']), ...times(3, ['{ (previous fault)', '{']),
    ['/ (prompt)', '/'], ...typed('/', 'violation'), ['/violation Enter', K.enter], ...times(5, ['n (next match)', 'n']), ...times(5, ['N (previous match)', 'N']),
    ['/ (prompt)', '/'], ['/ (typing)', '\x15'], ...typed('/', 'dom:erin cpuid'), ['/dom:erin cpuid Enter', K.enter], ...times(3, ['n (next match)', 'n']),
    ['/ (prompt)', '/'], ['/ (typing)', '\x15'], ...typed('/', '0x64000'), ['/0x64000 Enter', K.enter], ...times(3, ['n (next match)', 'n']),
    ['/ (prompt)', '/'], ['/ (typing)', '\x15'], ...typed('/', '"bob secret"'), ['/"bob secret" Enter', K.enter], ...times(3, ['n (next match)', 'n']),
    ['g (start)', 'g'], ['/ (prompt)', '/'], ['/ (typing)', '\x15'], ...typed('/', 'dom0.foreign_read'), ['/dom0.foreign_read Enter (rare kind, far)', K.enter],
    ...times(2, ['n (rare kind, far)', 'n']), ['N (rare kind, far)', 'N'],
    ['g (start)', 'g'], ['/ (prompt)', '/'], ['/ (typing)', '\x15'], ...typed('/', 'canary-confined'), ['/canary-confined Enter (rare text, far)', K.enter],
    ['n (rare text, far)', 'n'],
    ['Tab (pane)', K.tab], ...times(3, ['down (machine pane)', K.down]), ['Tab (pane)', K.tab],
    ...times(5, ['j (memory pane)', 'j']), ...times(3, ['down (memory pane)', K.down]), ['Tab (pane)', K.tab],
    ...times(5, ['down (smm pane)', K.down]), ['Tab (pane)', K.tab], ['Tab (pane)', K.tab],
    ...times(10, ['l (step)', 'l']), ...times(10, ['h (step back)', 'h']),
    ['? (help)', '?'], ['Esc (close)', K.esc], ['f (fork form)', 'f'], ['Esc (close)', K.esc],
    ['Home', K.home], ...times(20, ['l (step)', 'l']), ['f (fork form)', 'f'], ['Enter (fork 10,000 events, open diff)', K.enter],
    ...times(10, ['l (diff step)', 'l']), ...times(10, ['h (diff step back)', 'h']), ['PgDn (diff +100)', K.pgDn], ['n (next divergence)', 'n'],
    ['Esc (close diff)', K.esc], ['d (run list)', 'd'], ['Enter (diff)', K.enter], ['Esc (close diff)', K.esc],
  ];
}

interface Sample { label: string; keyMs: number; resultMs: number }

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Waits until the terminal has been written to after `frames` frames (a few turns at most). */
async function frameAfter(terminal: Terminal, frames: number): Promise<void> {
  for (let turns = 0; turns < 10 && terminal.frames === frames; turns++) await turn();
  if (terminal.frames === frames) throw new Error('a key produced no frame');
}

function services(path: string): TuiServices {
  return {
    status: (run) => run.status,
    fork(request) {
      const store = RecordingStore.open(path);
      try {
        const result = forkRun(store, { ...request, simVersion: 'bench', writerPid: process.pid }, { maxEvents: request.events });
        return { run: result.run, forkSeq: result.forkSeq };
      } finally {
        store.close();
      }
    },
  };
}

interface Driven { samples: Sample[]; indexSeconds: number; events: number; rssIndexed: number; rssMax: number; heapRetained: number }

/** The heap still reachable: what a long session keeps, not the garbage it has yet to collect. */
function heapRetained(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

async function drive(path: string): Promise<Driven> {
  const store = RecordingStore.open(path, { readonly: true });
  const run = store.latestRun();
  const scheduler = new ManualScheduler();
  const controller = new TuiController({ store, run, scheduler, services: services(path), theme: PLAIN, size: SIZE });
  const terminal = new Terminal();
  const keyboard = new Keyboard();
  const instance = render(createElement(App, { controller, size: SIZE }), {
    stdout: terminal as unknown as NodeJS.WriteStream, stdin: keyboard as unknown as NodeJS.ReadStream,
    stderr: terminal as unknown as NodeJS.WriteStream, debug: true, exitOnCtrlC: false, patchConsole: false,
  });
  await turn();
  let t = performance.now();
  scheduler.runAll();
  const indexSeconds = (performance.now() - t) / 1000;
  const rssIndexed = process.memoryUsage().rss;
  let rssMax = rssIndexed;
  const samples: Sample[] = [];
  for (const [label, key] of script(run.eventCount)) {
    t = performance.now();
    let frames = terminal.frames;
    keyboard.press(key);
    // React draws on a later turn of the event loop (and a lone Escape takes Ink one more).
    await frameAfter(terminal, frames);
    const keyMs = terminal.lastFrameAt - t;
    frames = terminal.frames;
    if (scheduler.runAll() > 0) await frameAfter(terminal, frames);
    const resultMs = terminal.lastFrameAt - t;
    samples.push({ label, keyMs, resultMs });
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }
  const retained = heapRetained();
  instance.unmount();
  controller.dispose();
  store.close();
  return { samples, indexSeconds, events: run.eventCount, rssIndexed, rssMax, heapRetained: retained };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const ms = (values: number[]): string => {
  const sorted = [...values].sort((a, b) => a - b);
  return `${percentile(sorted, 0.5).toFixed(1)} / ${percentile(sorted, 0.99).toFixed(1)} / ${sorted[sorted.length - 1].toFixed(1)}`;
};

function figures(result: Driven, recordSeconds: number | undefined): Figure[] {
  const { samples } = result;
  const byLabel = new Map<string, Sample[]>();
  for (const s of samples) byLabel.set(s.label, [...(byLabel.get(s.label) ?? []), s]);
  const mb = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MB`;
  const slowest = samples.reduce((a, b) => (b.keyMs > a.keyMs ? b : a));
  const keyMax = slowest.keyMs;
  const out: Figure[] = [
    { name: 'events in the recording', value: result.events.toLocaleString('en-US') },
    ...(recordSeconds === undefined ? [] : [{ name: 'recording it took (s)', value: recordSeconds.toFixed(0) }]),
    { name: 'indexing the run for markers, background (s)', value: result.indexSeconds.toFixed(1) },
    { name: `all ${samples.length} keys: key p50 / p99 / max (ms)`, value: ms(samples.map((s) => s.keyMs)), goal: 'max <= 50', ok: keyMax <= 50 },
    { name: 'all keys: result p50 / p99 / max (ms)', value: ms(samples.map((s) => s.resultMs)) },
    { name: 'slowest key', value: `${slowest.label}, ${slowest.keyMs.toFixed(1)} ms` },
  ];
  for (const [label, list] of byLabel) {
    out.push({ name: `  ${label} x${list.length}: key | result p50/p99/max`, value: `${ms(list.map((s) => s.keyMs))} | ${ms(list.map((s) => s.resultMs))}` });
  }
  out.push(
    { name: 'RSS after indexing', value: mb(result.rssIndexed) },
    { name: 'RSS max during the keys', value: mb(result.rssMax) },
    { name: 'heap retained at the end (after a GC)', value: mb(result.heapRetained) },
  );
  return out;
}

/** Copies a recording (and its write-ahead log) so the fork the script makes stays ours. */
function copyRecording(from: string, dir: string): string {
  const to = join(dir, 'reused.db');
  copyFileSync(from, to);
  if (existsSync(`${from}-wal`)) copyFileSync(`${from}-wal`, `${to}-wal`);
  return to;
}

/** The measurement itself, in this process: prints the figures as JSON. */
async function measure(eventsWanted: number): Promise<void> {
  keepHeapNearLive(); // as the tui command does
  const reuse = process.env.CHRONOVISOR_BENCH_TUI_DB;
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-tui-bench-'));
  try {
    let recordSeconds: number | undefined;
    let path: string;
    if (reuse !== undefined) {
      path = copyRecording(reuse, dir);
    } else {
      process.stderr.write(`recording ${eventsWanted.toLocaleString('en-US')} events...\n`);
      const t = performance.now();
      path = record(dir, eventsWanted);
      recordSeconds = (performance.now() - t) / 1000;
    }
    process.stderr.write('driving the app...\n');
    process.stdout.write(JSON.stringify(figures(await drive(path), recordSeconds)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The suite for bench/index.ts: runs the measurement in a fresh process, so the memory
 * figures are the TUI's alone and not the other suites' leftovers.
 */
export function benchTui(eventsWanted = Number(process.env.CHRONOVISOR_BENCH_EVENTS ?? 10_000_000), env: NodeJS.ProcessEnv = {}): Figure[] {
  // React as bin/chronovisor loads it: its production build, unless NODE_ENV says otherwise.
  const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), String(eventsWanted)], {
    stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 24, env: { NODE_ENV: 'production', ...process.env, ...env },
  });
  if (child.status !== 0) throw new Error(`the TUI benchmark failed (exit ${child.status})`);
  return JSON.parse(child.stdout) as Figure[];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await measure(Number(process.argv[2] ?? 10_000_000));
}
