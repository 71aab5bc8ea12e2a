/**
 * The controller without a screen: going back lands exactly where going forward does, the
 * marker jumps land on the nearest marker (checked against a plain scan), a fork opens the
 * diff at the first divergence, a refused fork is reported, a recording still being written
 * grows under the TUI, and NO_COLOR leaves no colour anywhere in a view.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { InputError } from '../src/events/errors.ts';
import type { EventKind } from '../src/events/schema.ts';
import { GENESIS_HASH, RecordingStore, type RunRow } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { recordScenario } from '../src/replay/recorder.ts';
import { firstDivergence } from '../src/replay/diff.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { TuiController, type TuiServices } from '../src/tui/controller.ts';
import type { Line } from '../src/tui/span-lines.ts';
import { machineLines } from '../src/tui/machine-view.ts';
import { memoryLines } from '../src/tui/memory-view.ts';
import { ManualScheduler } from '../src/tui/scheduler.ts';
import { smmLines } from '../src/tui/smm-view.ts';
import { COLORED, PLAIN, type Theme } from '../src/tui/theme.ts';
import type { AppView } from '../src/tui/view.ts';
import { SCENARIO, keyPresser, recordTwoTenants, testServices } from './fixtures/tui/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'chronovisor-tui-controller-'));
const recording = join(dir, 'two-tenants.db');
const SIZE = { columns: 100, rows: 30 };
const stores: RecordingStore[] = [];

before(() => recordTwoTenants(recording, 6000));
after(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Driven {
  controller: TuiController;
  scheduler: ManualScheduler;
  store: RecordingStore;
  keys(...keys: string[]): AppView;
}

function drive(options: { run?: number; theme?: Theme; services?: TuiServices; path?: string } = {}): Driven {
  const path = options.path ?? recording;
  const store = RecordingStore.open(path, { readonly: true });
  stores.push(store);
  const run = store.run(options.run ?? 2);
  const scheduler = new ManualScheduler();
  const controller = new TuiController({ store, run, scheduler, services: options.services ?? testServices(path), theme: options.theme ?? PLAIN, size: SIZE });
  scheduler.runAll();
  const keys = keyPresser(controller, scheduler);
  return { controller, scheduler, store, keys };
}

const jump = (d: Driven, seq: number): AppView => d.keys(':', ...String(seq), 'enter');

/** The seq of the first event of a kind in the vanilla run (within its first chunk). */
function firstSeqOf(kind: string): number {
  const store = RecordingStore.open(recording, { readonly: true });
  stores.push(store);
  const chunk = store.decodeChunk(store.chunkRowAt(store.run(2).id, 0)!, GENESIS_HASH);
  const index = chunk.events.findIndex((e) => e.kind === kind);
  assert.ok(index >= 0, `no ${kind} in the first chunk`);
  return chunk.firstSeq + index;
}

/** What a frame shows of the position, without the status line (it says how we got there). */
function shown(view: AppView): unknown {
  return { header: view.header, bar: view.bar, body: view.body.kind === 'browse' ? { rows: view.body.rows, detail: view.body.detail, pane: view.body.pane.id } : view.body.kind };
}

const seqOf = (view: AppView): number => Number(/seq (\d+)\//.exec(view.header)![1]);

test('going back one event shows exactly what going forward to it shows', () => {
  const d = drive();
  const length = d.controller.run.eventCount;
  fc.assert(fc.property(fc.integer({ min: 1, max: length }), fc.constantFrom('h', 'left', 'pageup', 'H'), (pos, key) => {
    const back = { h: 1, left: 1, pageup: 100, H: 1000 }[key]!;
    jump(d, pos);
    const viaBack = shown(d.keys(key));
    const direct = shown(jump(d, Math.max(0, pos - back)));
    assert.deepEqual(viaBack, direct);
  }), { numRuns: 25 });
});

test('marker jumps land on the nearest marker, as a plain scan finds it', () => {
  const d = drive();
  const timeline = new Timeline(d.store, d.controller.run);
  const seqs = (kinds: EventKind[]): number[] => [...timeline.iterate()].filter(([, e]) => kinds.includes(e.kind)).map(([s]) => s);
  const markers: Record<string, { kinds: EventKind[]; forward: boolean }> = {
    ']': { kinds: ['violation'], forward: true }, '[': { kinds: ['violation'], forward: false },
    E: { kinds: ['vm.exit'], forward: true }, e: { kinds: ['vm.exit'], forward: false },
    '}': { kinds: ['exception', 'mem.fault'], forward: true }, '{': { kinds: ['exception', 'mem.fault'], forward: false },
  };
  fc.assert(fc.property(fc.integer({ min: 0, max: timeline.length }), fc.constantFrom(...Object.keys(markers)), (pos, key) => {
    const { kinds, forward } = markers[key];
    const all = seqs(kinds);
    const expected = forward ? all.find((s) => s > pos) : [...all].reverse().find((s) => s < pos);
    jump(d, pos);
    assert.equal(seqOf(d.keys(key)), expected ?? pos, `${key} from ${pos}`);
  }), { numRuns: 40 });
});

test('f forks at the step boundary with the chosen change, then opens the diff at the first divergence', () => {
  const path = join(dir, 'fork.db');
  recordTwoTenants(path, 3000);
  const services = testServices(path);
  const requests: Parameters<TuiServices['fork']>[0][] = [];
  const d = drive({ path, services: { ...services, fork: (r) => { requests.push(r); return services.fork(r); } } });
  jump(d, 1500);
  const form = d.keys('f');
  assert.equal(form.body.kind, 'fork');
  const view = d.keys('enter');
  assert.equal(requests.length, 1);
  assert.equal(requests[0].at, new Timeline(d.store, d.store.run(2)).stepBoundaryAtOrBefore(1500), 'at the step boundary');
  assert.deepEqual(requests[0].modifications, [['profile', 'secure']]);
  assert.equal(requests[0].events, 10_000);
  assert.equal(view.body.kind, 'diff');
  const diff = view.body.kind === 'diff' ? view.body.diff : undefined;
  const a = new Timeline(d.store, d.store.run(2));
  const b = new Timeline(d.store, d.store.run(diff!.b.id));
  assert.equal(diff!.divergedAt, firstDivergence(a, b));
  assert.equal(diff!.cursor, diff!.divergedAt);
  assert.equal(d.keys('esc').body.kind, 'browse');
});

test('a refused fork is reported on the status line and the TUI goes on', () => {
  const d = drive({ services: { ...testServices(recording), fork: () => { throw new InputError('argument', 'no room for a fork'); } } });
  jump(d, 100);
  const view = d.keys('f', 'enter');
  assert.equal(view.body.kind, 'browse');
  assert.match(view.status.map((s) => s.text).join(''), /fork refused: no room for a fork/);
  assert.equal(seqOf(d.keys('l')), 101);
});

test('a recording still being written: the end grows, and G follows it', () => {
  const path = join(dir, 'live.db');
  const text = readFileSync(SCENARIO, 'utf8');
  const config = parseScenario(text, SCENARIO, (name) => readFileSync(join(dirname(SCENARIO), name), 'utf8'));
  const writer = RecordingStore.create(path, 'test');
  let live: Driven | undefined;
  const ends: number[] = [];
  recordScenario(writer, config, { name: 'live', scenarioText: text, scenarioPath: SCENARIO, config: '{}', simVersion: 'test', writerPid: process.pid }, {
    maxEvents: 20_000,
    onProgress: () => {
      if (live === undefined) {
        live = drive({ path, run: 1, services: { ...testServices(path), status: (run: RunRow) => run.status } });
        live.keys('G');
      } else {
        assert.equal(live.controller.refreshLive(), true, 'the writer is still at it');
        live.scheduler.runAll();
      }
      ends.push(seqOf(live.controller.getSnapshot()));
    },
  });
  writer.close();
  assert.ok(ends.length >= 3, `progress was reported ${ends.length} times`);
  assert.ok(ends.every((end, i) => i === 0 || end > ends[i - 1]), `the position followed the end: ${ends.join(', ')}`);
  assert.equal(live!.controller.refreshLive(), false, 'the writer is done');
  const done = live!.controller.getSnapshot();
  assert.equal(seqOf(done), live!.controller.run.eventCount);
  assert.match(done.header, /\[stopped\]/);
});

/** Every span of a view that a component would colour, panes included. */
function spans(view: AppView, theme: Theme): Line[] {
  const lines: Line[] = [view.bar, view.tabs, view.status];
  if (view.body.kind === 'browse') {
    const pane = view.body.pane;
    if (pane.id === 'machine') lines.push(...machineLines(pane.state, pane.names, pane.dom, 20, theme));
    if (pane.id === 'memory') lines.push(...memoryLines(pane.state, pane.names, pane.target, pane.mark, 100, 20, theme));
    if (pane.id === 'smm') lines.push(...smmLines(pane.state, pane.names, pane.row, pane.marked, 100, 20, theme));
  }
  return lines;
}

test('NO_COLOR: no colour anywhere; with colour, owners and markers are coloured', () => {
  for (const [theme, expectColor] of [[PLAIN, false], [COLORED, true]] as const) {
    const d = drive({ theme });
    jump(d, firstSeqOf('dom0.foreign_read') - 1);
    const colours = ['2', '3', '4'].flatMap((pane) => spans(d.keys(pane), theme)).flat().filter((s) => s.color !== undefined);
    assert.equal(colours.length > 0, expectColor, theme.color ? 'colours expected' : `colours: ${JSON.stringify(colours.slice(0, 3))}`);
  }
});

test('the memory pane follows the event until a frame is picked; "." follows again', () => {
  const d = drive();
  jump(d, firstSeqOf('dom0.foreign_read'));
  const memory = (v: AppView) => (v.body.kind === 'browse' && v.body.pane.id === 'memory' ? v.body.pane.target : undefined);
  const followed = memory(d.keys('3'));
  assert.deepEqual({ dom: followed?.dom, gfn: followed?.gfn }, { dom: 1, gfn: 1 }, 'dom0 read alice\'s gfn 1');
  assert.equal(memory(d.keys('down'))?.gfn, 2);
  assert.equal(memory(d.keys('l', 'h'))?.gfn, 2, 'a picked frame stays');
  assert.equal(memory(d.keys('.'))?.gfn, 1);
});

test('the header counts violations: on one, its place among all of them; elsewhere, those before among all', () => {
  const d = drive();
  const timeline = new Timeline(d.store, d.controller.run);
  const seqs = [...timeline.iterate()].filter(([, e]) => e.kind === 'violation').map(([s]) => s);
  assert.ok(seqs.length >= 2, `the vanilla run has violations: ${seqs.length}`);
  fc.assert(fc.property(fc.oneof(fc.constantFrom(...seqs), fc.integer({ min: 0, max: timeline.length })), (pos) => {
    const header = jump(d, pos).header;
    const before = seqs.filter((s) => s < pos).length;
    const expected = seqs.includes(pos) ? `violation ${before + 1} of ${seqs.length}` : `${before} of ${seqs.length} violations before`;
    assert.ok(header.includes(`  ${expected}`), `at ${pos}: ${header}`);
  }), { numRuns: 30 });
});
