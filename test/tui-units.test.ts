/**
 * The TUI's pure parts, one by one: keys, text fields, the search language, the block index
 * and the sliced search (against a brute-force scan), the layout, the fork form, themes and
 * NO_COLOR, the I/O panes' reading of the state, and the text helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { makeEvent } from '../src/events/make-event.ts';
import { EVENT_KINDS, type Event } from '../src/events/schema.ts';
import type { Timeline } from '../src/replay/timeline.ts';
import { BLOCKS_MAX, BlockIndex, kindMask } from '../src/tui/block-index.ts';
import type { Key } from 'ink';
import { BROWSE_KEYS, DIFF_KEYS, PANE_KEYS, PANES, actionFor, keyPresses, keysLabel, splitTyped } from '../src/tui/keymap.ts';
import { layoutFor } from '../src/tui/layout.ts';
import { SearchJob, kindMatcher, parseQuery } from '../src/tui/search.ts';
import { defaultField, editField, fieldText, textField } from '../src/tui/text-field.ts';
import { COLORED, PLAIN, domainColor, themeFor } from '../src/tui/theme.ts';
import { cut, fit, wrap } from '../src/tui/text.ts';
import { fitLine, lineText } from '../src/tui/span-lines.ts';
import { barMarks, helpSections, type HelpSection } from '../src/tui/view.ts';
import { helpLines } from '../src/tui/HelpOverlay.tsx';
import { lapicText } from '../src/tui/machine-view.ts';
import { allocateRows, cutSection, ioAllLines, ioLines, packed } from '../src/tui/io-view.ts';
import { initialNav } from '../src/tui/navigation.ts';
import { ioKey } from '../src/tui/pane-keys.ts';
import { initialState, type MachineState } from '../src/core/machine/state.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { VTD_GSTS_IRES, VTD_GSTS_QIES, VTD_GSTS_TES } from '../src/core/hardware/iommu/index.ts';

const press = (name: string, text = '') => ({ name, text });

// ---- a timeline made of an array, for the index and the search ---------------------

function fakeTimeline(events: Event[]): Timeline {
  return {
    length: events.length,
    event: (seq: number) => events[seq],
    // Small chunks, so that searches cross many chunk boundaries.
    chunkOnce: (seq: number) => {
      const firstSeq = seq - (seq % 64);
      return { firstSeq, events: events.slice(firstSeq, firstSeq + 64) };
    },
    // No chunk index: the search tests every event the block index lets through.
    store: { hasChunkIndex: false },
    *iterate(from = 0, to = events.length) {
      for (let seq = Math.max(0, from); seq < Math.min(to, events.length); seq++) yield [seq, events[seq]] as [number, Event];
    },
  } as unknown as Timeline;
}

const idle = (): Event => makeEvent('sched.idle', { pcpu: 0, ticks: 1 });
const violation = (dom: number): Event => makeEvent('violation', { invariant: 'single-owner', dom, mfn: 300, detail: 'x' });
const write = (dom: number, gpa: number): Event => makeEvent('mem.write', { dom, gpa, mfn: 300, offset: gpa % 4096, stored: new Uint8Array([1, 2, 3, 4]) });
const exit = (dom: number): Event => makeEvent('vm.exit', { dom, vcpu: 0, pcpu: 0, reason: 10, qualification: 0, gla: -1, gpa: -1, length: 2, vector: -1, errorCode: -1 });

function indexed(events: Event[]): BlockIndex {
  const index = new BlockIndex(() => fakeTimeline(events));
  index.length = events.length;
  assert.equal(index.scan(Infinity, () => 0), true);
  return index;
}

// ---- keys ---------------------------------------------------------------------------

test('keys: no key does two things in one table', () => {
  for (const [name, table] of [['browse', BROWSE_KEYS], ['diff', DIFF_KEYS], ...Object.entries(PANE_KEYS)] as const) {
    const keys = (table as readonly { keys: readonly string[] }[]).flatMap((b) => b.keys);
    assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), [], `${name} keys`);
  }
  assert.equal(actionFor(BROWSE_KEYS, 'S-right'), 'forward-1000');
  assert.equal(actionFor(BROWSE_KEYS, 'L'), 'forward-1000');
  assert.equal(actionFor(BROWSE_KEYS, 'pagedown'), 'forward-100');
});

test('keys: what arrives in one read is split as typed', () => {
  assert.deepEqual(splitTyped('lll', false), [press('l', 'l'), press('l', 'l'), press('l', 'l')]);
  assert.deepEqual(splitTyped('violation\r', true), [press('violation', 'violation'), press('enter')]);
  assert.deepEqual(splitTyped('a\x7fb', true), [press('a', 'a'), press('backspace'), press('b', 'b')]);
});

test('keys: Escape and a key read together are both pressed; arrows keep their shift', () => {
  const key = (flags: Partial<Key>): Key => ({ upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false, return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false, super: false, hyper: false, capsLock: false, numLock: false, ...flags });
  assert.deepEqual(keyPresses('q', key({ meta: true })), [press('esc'), press('q', 'q')]);
  assert.deepEqual(keyPresses('', key({ escape: true, meta: true })), [press('esc')]);
  assert.deepEqual(keyPresses('', key({ rightArrow: true, shift: true })), [press('S-right')]);
  assert.deepEqual(keyPresses('L', key({ shift: true })), [press('L', 'L')]);
  assert.deepEqual(keyPresses('', key({ delete: true })), [press('backspace')], 'the Backspace key sends DEL');
});

test('text field: edits at the cursor; a default is replaced by what is typed', () => {
  let field = textField('seq');
  field = editField(field, press('left'))!;
  field = editField(field, press('X', 'X'))!;
  assert.equal(fieldText(field), 'seX_q');
  field = editField(field, press('backspace'))!;
  assert.equal(field.text, 'seq');
  assert.equal(editField(field, press('f1')), undefined, 'a named key that is not an edit');
  assert.equal(editField(defaultField('10000'), press('5', '5'))!.text, '5');
  assert.equal(editField(defaultField('10000'), press('backspace'))!.text, '');
});

// ---- search -------------------------------------------------------------------------

test('search: kinds and families, domains, addresses, text, and what is wrong', () => {
  const names = new Map([[0, 'dom0'], [1, 'alice'], [2, 'bob']]);
  const m = parseQuery('mem dom:alice 0x2002', names);
  assert.ok(typeof m !== 'string');
  assert.equal(m.test(write(1, 0x2000)), true, 'a 4-byte write at 0x2000 covers 0x2002');
  assert.equal(m.test(write(2, 0x2000)), false, 'bob is not alice');
  assert.equal(m.test(write(1, 0x3000)), false);
  assert.equal(m.test(violation(1)), false, 'a violation is not a mem event');
  const text = parseQuery('"single-owner"', names);
  assert.ok(typeof text !== 'string' && text.test(violation(1)) && !text.test(idle()));
  assert.match(parseQuery('dom:carol', names) as string, /no domain 'carol'; domains: dom0, alice, bob/);
  assert.match(parseQuery('kind:nope', names) as string, /no event kind 'nope'/);
  assert.equal(parseQuery('   ', names), 'an empty search');
});

test('search: the sliced search finds what a plain scan finds, in both directions', () => {
  const names = new Map([[1, 'alice'], [2, 'bob']]);
  const eventArb = fc.oneof(
    { weight: 12, arbitrary: fc.constant(idle()) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map(violation) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map(exit) },
    { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 3 })).map(([d, p]) => write(d, p * 0x1000)) },
  );
  const queryArb = fc.constantFrom('violation', 'vm.exit', 'dom:bob', 'mem dom:alice', '0x1000', 'single-owner', 'violation dom:bob');
  fc.assert(fc.property(fc.array(eventArb, { minLength: 1, maxLength: 3000 }), queryArb, fc.nat(), fc.boolean(), fc.nat({ max: 3 }), (events, query, start, forward, slice) => {
    const timeline = fakeTimeline(events);
    const index = new BlockIndex(() => timeline);
    index.length = events.length;
    // Sometimes search over a partly indexed run: unindexed blocks must be scanned, not skipped.
    if (slice > 0) index.scan(Infinity, () => 0);
    const matcher = parseQuery(query, names);
    assert.ok(typeof matcher !== 'string');
    const from = start % events.length;
    const direction = forward ? 1 : -1;
    const job = new SearchJob(timeline, index, matcher, from, direction);
    let clock = 0;
    while (!job.step(clock + 1, () => clock++));
    let expected: number | undefined;
    for (let s = from; s >= 0 && s < events.length; s += direction) if (matcher.test(events[s])) { expected = s; break; }
    assert.equal(job.found, expected);
  }), { numRuns: 150 });
});

// ---- the block index ---------------------------------------------------------------

test('block index: blocks grow instead of the arrays, and keep every kind they held', () => {
  const events = Array.from({ length: BLOCKS_MAX * 2 + 10 }, (_, i) => (i === 5 ? violation(1) : i === BLOCKS_MAX * 2 + 3 ? exit(3) : idle()));
  const index = indexed(events);
  assert.equal(index.blockSize, 4, 'twice BLOCKS_MAX events need blocks of 4');
  assert.equal(index.mayContain(index.blockOf(5), kindMask(['violation']), undefined), true);
  assert.equal(index.mayContain(index.blockOf(4000), kindMask(['violation']), undefined), false);
  assert.equal(index.mayContain(index.blockOf(BLOCKS_MAX * 2 + 3), kindMask(['vm.exit']), 1 << 3), true);
  assert.equal(index.mayContain(index.blockOf(BLOCKS_MAX * 2 + 3), kindMask(['vm.exit']), 1 << 2), false, 'exit of domain 3, not 2');
  const job = new SearchJob(fakeTimeline(events), index, kindMatcher('VM exit', ['vm.exit']), 0, 1);
  assert.equal(job.step(Infinity, () => 0), true);
  assert.equal(job.found, BLOCKS_MAX * 2 + 3);
});

test('timeline bar: one mark per column, the most important thing in it', () => {
  const events = Array.from({ length: 100 }, (_, i) => (i === 10 ? violation(1) : i === 55 ? exit(1) : i === 90 ? write(1, 0) : idle()));
  const index = indexed(events);
  assert.equal(barMarks(index, 100, [72], 10), '-V---x-Y--');
  const partly = new BlockIndex(() => fakeTimeline(events));
  partly.length = 100;
  assert.equal(barMarks(partly, 100, [], 10), '..........', 'nothing indexed yet');
  assert.equal(barMarks(index, 4, [], 8), ' - - - -', 'a run shorter than the bar');
  assert.equal(EVENT_KINDS.length < 64, true, 'kind masks hold every kind');
});

// ---- layout, text, themes -----------------------------------------------------------

test('layout: 80x24 and larger fill the terminal but its last line', () => {
  for (const size of [{ columns: 80, rows: 24 }, { columns: 120, rows: 40 }, { columns: 200, rows: 60 }]) {
    const l = layoutFor(size);
    assert.equal(4 + l.eventRows + l.detailRows + l.paneRows, size.rows - 1, `${size.columns}x${size.rows}`);
    assert.equal(l.width, size.columns);
    assert.ok(l.paneRows >= 8 && l.eventRows >= 5, `${size.columns}x${size.rows} leaves room for the panes`);
  }
});

test('text: lines are cut to the width, never wrapped by the terminal', () => {
  assert.equal(fit('abcdef', 4), 'abc~');
  assert.equal(fit('ab', 4), 'ab  ');
  assert.equal(cut('caf\u00e9\ttab', 20), 'caf??tab', 'what a terminal would not show as one cell');
  assert.deepEqual(wrap('one two three four', 9, 2), ['one two', 'three fo~']);
  assert.equal(lineText(fitLine([{ text: 'abc' }, { text: 'def', color: 'red' }], 5)), 'abcd~');
});

test('NO_COLOR: set and not empty means no colour at all', () => {
  assert.equal(themeFor(undefined).color, true);
  assert.equal(themeFor('').color, true, 'an empty NO_COLOR does not count');
  assert.equal(themeFor('1').color, false);
  assert.equal(domainColor(PLAIN, 1), undefined);
  assert.equal(typeof domainColor(COLORED, 1), 'string');
});

test('machine pane: the APIC timer as the model keeps it, whatever its fields', () => {
  assert.equal(lapicText({ lvt: 0x20, initialCount: 200, deadline: 1234, pending: true }), 'lvt=0x20 initialCount=200 deadline=1234 pending=true');
  assert.equal(lapicText({ lvt: 0x10020, initialCount: 0, deadline: -1, pending: false }), 'off');
});

/** A machine with alice and bob, each with a VF, their IOMMU domains, IRTEs, caches, a fault. */
function ioMachine(): MachineState {
  const config = parseScenario('seed: 1\nmachine: { memoryMiB: 4, pcpus: 1 }\ndom0: { memoryKiB: 256 }\ndomains:\n  - { name: alice, memoryKiB: 64, guest: { ops: [yield] } }\n  - { name: bob, memoryKiB: 64, guest: { ops: [yield] } }\n', 'io.yaml');
  const state = initialState(config);
  evolve(state, makeEvent('domain.create', { dom: 1, name: 'alice', memoryKiB: 64, vcpus: 1 }));
  evolve(state, makeEvent('domain.create', { dom: 2, name: 'bob', memoryKiB: 64, vcpus: 1 }));
  const io = state.io;
  io.vtd.regs.gsts = VTD_GSTS_TES | VTD_GSTS_QIES | VTD_GSTS_IRES;
  Object.assign(io.xenVtd, { enabled: true, irt: 0x4e000 });
  const sids = [0x0280, 0x0282]; // 02:10.0 and 02:10.2
  sids.forEach((sid, i) => {
    io.xenVtd.domains.set(i + 1, { did: i + 1, slptptr: 0x50000 + i * 0x1000, frames: [] });
    io.xenVtd.devices.set(sid, i + 1);
    io.xenVtd.irtes.set(i, { sid, dom: i + 1, vcpu: 0, vector: 0x30 + i });
    io.vtd.contextCache.set(sid, { sid, did: i + 1, tt: 0, aw: 2, slptptr: 0x50000 + i * 0x1000, fpd: false });
    io.vtd.iotlb.set(`k${i}`, { sid, did: i + 1, gfn: 0x10 + i, level: 1, hpa: 0x150000 + i * 0x1000, read: true, write: i === 0 });
    evolve(state, makeEvent('nic.vf', { vf: i + 1, bdf: sid, dom: i + 1, mac: `02:00:00:00:00:0${i + 1}`, vlan: 10 * (i + 1), spoofcheck: i === 0 }));
    evolve(state, makeEvent('nic.reg', { vf: i + 1, reg: 'VFTDT', value: 3 + i }));
  });
  io.vtd.frcd[1] = { f: true, fr: 0x5, sid: 0x0282, fi: 0x99, t: false };
  io.siom.tx.set(1, 2);
  io.netbackUp = false;
  return state;
}

test('I/O panes: the IOMMU, interrupt remapping and NIC/SIOM as state.io has them', () => {
  const text = ioLines(ioMachine(), 80, 40, PLAIN).map(lineText);
  assert.equal(text[0], 'IOMMU (VT-d): GSTS TE on  IRE on  QIES on  faults 1  ctx 2  IOTLB 2');
  assert.equal(text[1], '  devices 02:10.0 -> did 1 alice  02:10.2 -> did 2 bob');
  assert.equal(text[2], '  fault FRCD1 02:10.2 0x5 WRITE_NOT_PERMITTED fi 0x99 write');
  assert.equal(text[3], '  ctx     02:10.0 did 1 slpt 0x50000  02:10.2 did 2 slpt 0x51000');
  assert.equal(text[4], '  IOTLB   02:10.0 did 1 0x10->0x150000 RW  02:10.2 did 2 0x11->0x151000 R-');
  assert.equal(text[5], '');
  assert.equal(text[6], 'Interrupt remapping: on  IRT 0x4e000  IRTEs 2  IEC 0 cached');
  assert.equal(text[7], '  IRTE 0: 02:10.0 -> alice.0 vec 0x30  1: 02:10.2 -> bob.0 vec 0x31');
  // Through SIOM (secure) dom0's backend is not on the path; in vanilla it is, and it is down.
  assert.match(text[9], /^NIC 02:00\.0 8086:10fb {2}VFs 0\/\d+ enabled, 2 configured {2}path SIOM$/);
  const vanilla = ioMachine();
  vanilla.profile = 'vanilla';
  assert.match(lineText(ioLines(vanilla, 80, 40, PLAIN)[9]), /configured {2}path netback \(down\)$/);
  assert.equal(text[10], '  vf bdf     dom      mac               vlan spoof  TDH  TDT  RDH  RDT EICR');
  assert.equal(text[11], '  1  02:10.0 alice    02:00:00:00:00:01   10 on       0    3    0    0 0x0');
  assert.equal(text[12], '  2  02:10.2 bob      02:00:00:00:00:02   20 off      0    4    0    0 0x0');
  assert.equal(text[13], '  SIOM buffers  tx: alice 2  rx: empty');
  assert.equal(text.length, 14);
});

test('I/O panes: an empty machine says what is off; 80x24 shares 10 rows and cuts with a count', () => {
  const empty = ioLines(initialState(ioMachine().config), 80, 10, PLAIN).map(lineText);
  assert.match(empty[0], /^IOMMU \(VT-d\): GSTS TE off {2}IRE off {2}QIES off/);
  assert.equal(empty[1], '  devices  none assigned (DMA remapping off)');
  const rows = layoutFor({ columns: 80, rows: 24 }).paneRows;
  const state = ioMachine();
  for (let i = 2; i < 12; i++) state.io.vtd.iotlb.set(`k${i}`, { sid: 0x280, did: 1, gfn: 0x100 + i, level: 1, hpa: 0x200000 + i * 0x1000, read: true, write: true });
  const cramped = ioLines(state, 80, rows, PLAIN);
  assert.equal(cramped.length, rows);
  assert.ok(cramped.every((l) => lineText(l).length <= 80), 'no line is wider than the screen');
  assert.ok(cramped.some((l) => /^ {2}\.\.\. \d+ more lines/.test(lineText(l))), 'a cut section says so');
  assert.ok(cramped.some((l) => lineText(l).startsWith('Interrupt remapping:')) && cramped.some((l) => lineText(l).startsWith('NIC ')), 'every section keeps its title');
});

test('I/O panes: j/k scroll from the overview to the sections in full, and back', () => {
  const state = ioMachine();
  for (let i = 2; i < 12; i++) state.io.vtd.iotlb.set(`k${i}`, { sid: 0x280, did: 1, gfn: 0x100 + i, level: 1, hpa: 0x200000 + i * 0x1000, read: true, write: true });
  const layout = layoutFor({ columns: 80, rows: 24 });
  const c = { state, event: undefined, names: new Map(), layout };
  const all = ioAllLines(state, 80, PLAIN).map(lineText);
  let nav = initialNav();
  nav = ioKey(nav, 'scroll-down', c);
  assert.deepEqual(ioLines(state, 80, layout.paneRows, PLAIN, nav.io.row).map(lineText), all.slice(0, layout.paneRows));
  for (let i = 0; i < 100; i++) nav = ioKey(nav, 'scroll-down', c);
  assert.deepEqual(ioLines(state, 80, layout.paneRows, PLAIN, nav.io.row).map(lineText), all.slice(-layout.paneRows), 'stops at the last line');
  for (let i = 0; i < 100; i++) nav = ioKey(nav, 'scroll-up', c);
  assert.equal(nav.io.row, 0);
});

test('I/O panes: rows are shared fairly; packing wraps items under a label', () => {
  assert.deepEqual(allocateRows([3, 2, 4], 20), [3, 2, 4]);
  assert.deepEqual(allocateRows([8, 2, 6], 10), [4, 2, 4]);
  assert.deepEqual(allocateRows([20, 20, 20], 10), [4, 3, 3]);
  assert.deepEqual(allocateRows([5, 5], 1), [1, 0]);
  fc.assert(fc.property(fc.array(fc.nat(30), { maxLength: 5 }), fc.nat(60), (needs, rows) => {
    const given = allocateRows(needs, rows);
    const total = given.reduce((a, b) => a + b, 0);
    assert.ok(given.every((g, i) => g >= 0 && g <= needs[i]));
    assert.equal(total, Math.min(rows, needs.reduce((a, b) => a + b, 0)));
  }));
  assert.deepEqual(cutSection([[{ text: 'a' }], [{ text: 'b' }], [{ text: 'c' }]], 2, PLAIN).map(lineText), ['a', '  ... 2 more lines (j/k in the io pane scrolls)']);
  assert.deepEqual(packed('  x ', ['aaaa', 'bbbb', 'cccc'], 14).map(lineText), ['  x aaaa  bbbb', '    cccc']);
});

test('the help fits 80x24 with any pane focused, a forensic pane open, or in a diff, and still names every key and what it does', () => {
  const { eventRows, detailRows, paneRows, width } = layoutFor({ columns: 80, rows: 24 });
  const height = eventRows + detailRows + paneRows;
  const cases: [string, HelpSection[]][] = [
    ...PANES.map((focus): [string, HelpSection[]] => [focus, helpSections(focus, false)]),
    ['forensic pane', helpSections('events', false, true)],
    ['diff', helpSections('events', true)],
  ];
  for (const [name, sections] of cases) {
    const text = helpLines(sections, width, height).map(lineText);
    assert.ok(text.length <= height, `${name}: ${text.length} lines for ${height} rows`);
    for (const line of text) assert.ok(line.length <= width, `${name}: a line wider than ${width}: ${line}`);
    const all = text.join('\n');
    for (const binding of sections.flatMap((s) => s.bindings)) {
      for (const key of binding.keys) assert.match(all, new RegExp(`(^|\\s)${keysLabel([key]).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`, 'm'), `${name}: key ${key}`);
      // Each binding's help is shown whole, or as the paired line it shares with the next.
      const shown = all.includes(binding.help) || sections.some((s) => s.bindings.some((b, i) => b.pair !== undefined && all.includes(b.pair) && (b === binding || s.bindings[i + 1] === binding)));
      assert.ok(shown, `${name}: ${binding.help}`);
    }
  }
});
