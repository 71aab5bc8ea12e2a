/**
 * The forensic keys of the TUI, on the controller: `x` explains a violation in a pane whose
 * seqs Enter jumps to; `w` watches the memory pane's bytes and `(` `)` land on every access
 * to them (checked against a plain scan of the run's memory events); `o` lands on the
 * bytes' origin and `p` lists their provenance; without a forensic index each says how to
 * build one and the recording is left as it was.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/events/errors.ts';
import type { Event } from '../src/events/schema.ts';
import { RecordingStore } from '../src/events/store.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { buildIndex } from '../src/cli/forensics.ts';
import { TuiController } from '../src/tui/controller.ts';
import { QueryJob } from '../src/tui/forensics.ts';
import { SLICE_MS } from '../src/tui/job-runner.ts';
import { BROWSE_KEYS, PANEL_KEYS } from '../src/tui/keymap.ts';
import { lineText } from '../src/tui/span-lines.ts';
import { ManualScheduler } from '../src/tui/scheduler.ts';
import { PLAIN } from '../src/tui/theme.ts';
import type { AppView } from '../src/tui/view.ts';
import { keyPresser, recordTwoTenants, testServices } from './fixtures/tui/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'chronovisor-tui-forensics-'));
const bare = join(dir, 'bare.db');
const indexed = join(dir, 'indexed.db');
const stores: RecordingStore[] = [];
/** In the vanilla run of two-tenants: dom0 reads alice's frame (gfn 1 = mfn 321) at 1042, breaking two invariants at 1043 and 1044. */
const FOREIGN_READ = 1042;
const NO_PLAINTEXT = 1044;
const MFN = 321;

before(() => {
  recordTwoTenants(bare, 6000);
  copyFileSync(bare, indexed);
  buildIndex(indexed, RecordingStore.open(indexed, { readonly: true }).run(2));
});
after(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** While `slow`, a clock that moves a whole slice each time it is read: every slice of a job does one step. */
class SlowScheduler extends ManualScheduler {
  slow = false;
  private clock = 0;
  override now(): number {
    if (!this.slow) return super.now();
    this.clock += SLICE_MS;
    return this.clock;
  }
}

function drive(path: string, scheduler: ManualScheduler = new ManualScheduler()) {
  const store = RecordingStore.open(path, { readonly: true });
  stores.push(store);
  const controller = new TuiController({ store, run: store.run(2), scheduler, services: testServices(path), theme: PLAIN, size: { columns: 120, rows: 40 } });
  scheduler.runAll();
  const keys = keyPresser(controller, scheduler);
  const jump = (seq: number): AppView => keys(':', ...String(seq), 'enter');
  const pos = (): number => Number(/seq (\d+)\//.exec(controller.getSnapshot().header)![1]);
  return { store, controller, scheduler, keys, jump, pos, timeline: new Timeline(store, store.run(2)) };
}

const status = (view: AppView): string => lineText(view.status);
const paneText = (view: AppView): string[] => {
  assert.equal(view.body.kind, 'browse');
  const pane = view.body.kind === 'browse' ? view.body.pane : undefined;
  return pane?.id === 'forensic' ? pane.lines.map(lineText) : [];
};

test('without a forensic index, each forensic key says how to build one and the recording is untouched', () => {
  const before = readFileSync(bare);
  const d = drive(bare);
  d.jump(NO_PLAINTEXT);
  for (const key of ['x', 'w', 'o', 'p']) {
    const view = d.keys(key);
    assert.match(status(view), /^run 2 has no forensic index \(x w o p need one\): chronovisor index \/.*bare\.db$/, `${key}: ${status(view)}`);
    assert.notEqual(view.body.kind === 'browse' && view.body.pane.id, 'forensic', `${key} opens no pane`);
  }
  assert.match(status(d.keys(')')), /no watch: w watches/);
  assert.ok(readFileSync(bare).equals(before), 'the recording is byte for byte as it was');
});

test('x on a violation opens its explanation; Enter jumps to the access and to the origin of its data; Esc closes', () => {
  const d = drive(indexed);
  d.jump(NO_PLAINTEXT);
  const lines = paneText(d.keys('x'));
  assert.match(lines[0], /^explain seq 1044/);
  assert.ok(lines.some((l) => /rule: dom0 never sees a guest's plaintext/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /chain: 144 -> 145 -> 980 -> 1042 -> 1044/.test(l)), lines.join('\n'));
  // The first row is the violation itself; the next row with a seq is the access.
  assert.match(lines[1], /^> violation dom0-no-plaintext at seq 1044/);
  d.keys('down', 'enter');
  assert.equal(d.pos(), FOREIGN_READ);
  const access = d.timeline.event(FOREIGN_READ);
  assert.equal(access.kind, 'dom0.foreign_read');
  assert.equal(access.kind === 'dom0.foreign_read' && access.mfn, MFN);
  // The origin row of the data: alice's canary write.
  d.keys('down', 'enter');
  assert.equal(d.pos(), 980);
  const write = d.timeline.event(980);
  assert.ok(write.kind === 'mem.write' && write.mfn === MFN && write.offset === 0, `seq 980: ${write.kind}`);
  assert.equal(write.kind === 'mem.write' && new TextDecoder().decode(write.stored.slice(0, 12)), 'alice: card ');
  // The other keys work with the pane open, and it stays until Esc; then the state pane is back.
  assert.match(status(d.keys(')')), /no watch/);
  d.keys('l');
  assert.equal(d.pos(), 981);
  assert.ok(paneText(d.controller.getSnapshot()).length > 0);
  const closed = d.keys('esc');
  assert.ok(closed.body.kind === 'browse' && closed.body.pane.id !== 'forensic');
});

test('x elsewhere says what it needs', () => {
  const d = drive(indexed);
  d.jump(FOREIGN_READ);
  assert.match(status(d.keys('x')), /x explains a violation; seq 1042 is a dom0\.foreign_read/);
});

/** Memory events touching bytes [0, 64) of the frame, by a plain scan of the whole run. */
function memoryEventsOfBytes(timeline: Timeline): number[] {
  const seqs: number[] = [];
  const length = (e: Event): number => (e.kind === 'dom0.foreign_read' ? e.value.length : e.kind === 'mem.write' || e.kind === 'mem.read' ? e.stored.length : 0);
  for (const [seq, e] of timeline.iterate()) {
    if ((e.kind === 'mem.write' || e.kind === 'mem.read' || e.kind === 'dom0.foreign_read') && e.mfn === MFN && e.offset < 64 && length(e) > 0) seqs.push(seq);
  }
  return seqs;
}

test('w watches the bytes the memory pane shows; ( and ) visit every access to them, as a plain scan finds the memory ones', () => {
  const d = drive(indexed);
  d.jump(FOREIGN_READ);
  assert.match(status(d.keys('w')), /watching gpa:alice:0x1000\/64 = mfn:321\/64/);
  assert.match(lineText(d.controller.getSnapshot().tabs), /watch gpa:alice:0x1000\/64/);
  // Backwards from the read: the canary write, then the mapping and the change of owner that gave alice the frame.
  assert.match(status(d.keys('(')), /w mfn:321\/31 at seq 980: alice \(scripted\)/);
  assert.equal(d.pos(), 980);
  d.keys('(');
  assert.equal(d.pos(), 145);
  d.keys('(');
  assert.equal(d.pos(), 144);
  assert.match(status(d.keys('(')), /no access to gpa:alice:0x1000\/64 before seq 144/);
  // Forwards to the end: every memory event on those bytes is visited, in order.
  const visited: number[] = [d.pos()];
  for (;;) {
    const before = d.pos();
    d.keys(')');
    if (d.pos() === before) break;
    assert.ok(d.pos() > before);
    visited.push(d.pos());
  }
  assert.match(status(d.controller.getSnapshot()), /no access to .* after seq/);
  const memoryKinds = new Set(['mem.write', 'mem.read', 'dom0.foreign_read']);
  assert.deepEqual(visited.filter((s) => memoryKinds.has(d.timeline.event(s).kind)), memoryEventsOfBytes(d.timeline));
  assert.ok(visited.includes(FOREIGN_READ));
  assert.match(status(d.keys('W')), /watch stopped/);
  assert.match(status(d.keys(')')), /no watch/);
});

test('o lands on the origin of the bytes under the cursor; p lists their provenance with seqs to jump to', () => {
  const d = drive(indexed);
  d.jump(FOREIGN_READ);
  assert.match(status(d.keys('o')), /origin of gpa:alice:0x1000\/64: seq 980 alice \(scripted\): scenario plant: the canary secret alice planted/);
  assert.equal(d.pos(), 980);
  d.jump(FOREIGN_READ);
  const lines = paneText(d.keys('p'));
  assert.match(lines[0], /^provenance of gpa:alice:0x1000\/64 at seq 1042/);
  // Long rows wrap onto indented lines.
  const text = lines.join('\n');
  assert.match(text, /> #0 seq 980 alice \(scripted\): plants a canary -> mfn:321\/31 .* ORIGIN: scenario\s+plant/);
  assert.match(text, /mfn:321\+0x1f\/33 +ORIGIN: uninitialised/, 'the bytes after the secret were never written');
  d.keys('enter');
  assert.equal(d.pos(), 980, 'the first hop is the canary write');
});

test('the help lists the forensic keys; with a pane open, its own keys', () => {
  const d = drive(indexed);
  const help = d.keys('?');
  assert.equal(help.body.kind, 'help');
  const keys = help.body.kind === 'help' ? help.body.sections.flatMap((s) => s.bindings.flatMap((b) => b.keys)) : [];
  for (const k of ['x', 'w', 'W', '(', ')', 'o', 'p']) assert.ok(keys.includes(k), k);
  assert.ok(BROWSE_KEYS.some((b) => b.action === 'explain'));
  d.keys('q');
  d.jump(NO_PLAINTEXT);
  d.keys('x', '?');
  const panelHelp = d.controller.getSnapshot();
  const titles = panelHelp.body.kind === 'help' ? panelHelp.body.sections.map((s) => s.title) : [];
  assert.ok(titles.includes('the forensic pane'));
  assert.deepEqual(panelHelp.body.kind === 'help' ? panelHelp.body.sections[1].bindings : [], PANEL_KEYS);
  // Any key closes the help, back to the pane.
  assert.ok(paneText(d.keys('z')).length > 0);
});

test('a query runs in slices: progress shows on the tabs line, Esc stops it and nothing opens', () => {
  const scheduler = new SlowScheduler();
  const d = drive(indexed, scheduler);
  d.jump(FOREIGN_READ);
  scheduler.slow = true;
  d.controller.press({ name: 'p', text: 'p' });
  const running = d.controller.getSnapshot();
  assert.match(lineText(running.tabs), /tracing gpa:alice:0x1000\/64 \d+% \(Esc stops\)/);
  assert.equal(paneText(running).length, 0, 'no pane before the answer');
  d.controller.press({ name: 'esc', text: '' });
  assert.match(status(d.controller.getSnapshot()), /tracing gpa:alice:0x1000\/64: stopped/);
  d.scheduler.runAll();
  assert.equal(paneText(d.controller.getSnapshot()).length, 0, 'a stopped query opens nothing');
  scheduler.slow = false;
  assert.equal(d.pos(), FOREIGN_READ);
  // Left to run, the same query opens its pane.
  assert.match(paneText(d.keys('p'))[0], /^provenance of gpa:alice:0x1000\/64 at seq 1042/);
});

test('QueryJob: one slice stops at its deadline, the answer comes at the end, bad input becomes a problem', () => {
  function* steps(n: number, fail?: Error): Generator<number, string> {
    for (let i = 1; i <= n; i++) yield i;
    if (fail) throw fail;
    return 'done';
  }
  let clock = 0;
  const now = (): number => clock++;
  const job = new QueryJob(steps(100));
  assert.equal(job.step(3, now), false);
  assert.ok(job.progress > 0 && job.progress < 1);
  assert.equal(job.answer, undefined);
  assert.equal(job.step(Infinity, now), true);
  assert.deepEqual(job.answer, { value: 'done' });
  const damaged = new QueryJob(steps(2, new InputError('damaged', 'chunk 3 is damaged')));
  assert.equal(damaged.step(Infinity, now), true);
  assert.equal(damaged.problem, 'chunk 3 is damaged');
  assert.throws(() => new QueryJob(steps(1, new Error('a bug'))).step(Infinity, now), /a bug/);
});
