/**
 * The TUI's pure parts, one by one: keys, text fields, the search language, the block index
 * and the sliced search (against a brute-force scan), the layout, the fork form, themes and
 * NO_COLOR, the I/O panes' reading of the state, and the text helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EVENT_KINDS, makeEvent, type Event } from '../src/events/schema.ts';
import type { Timeline } from '../src/replay/timeline.ts';
import { BLOCKS_MAX, BlockIndex, kindMask } from '../src/tui/block-index.ts';
import type { Key } from 'ink';
import { BROWSE_KEYS, DIFF_KEYS, PANE_KEYS, actionFor, keyPresses, splitTyped } from '../src/tui/keymap.ts';
import { layoutFor } from '../src/tui/layout.ts';
import { SearchJob, kindMatcher, parseQuery } from '../src/tui/search.ts';
import { defaultField, editField, fieldText, textField } from '../src/tui/text-field.ts';
import { COLORED, PLAIN, domainColor, themeFor } from '../src/tui/theme.ts';
import { cut, fit, wrap } from '../src/tui/text.ts';
import { fitLine, lineText } from '../src/tui/lines.ts';
import { barMarks } from '../src/tui/view.ts';
import { lapicText } from '../src/tui/machine-view.ts';
import { deviceLines, IOMMU } from '../src/tui/io-view.ts';
import type { MachineState } from '../src/core/state.ts';

const press = (name: string, text = '') => ({ name, text });

// ---- a timeline made of an array, for the index and the search ---------------------

function fakeTimeline(events: Event[]): Timeline {
  return {
    length: events.length,
    event: (seq: number) => events[seq],
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

test('I/O panes: none yet says so; a model in the state is listed table by table', () => {
  const none = deviceLines({} as MachineState, IOMMU);
  assert.match(lineText(none[0]), /IOMMU \(VT-d\): none in this machine yet/);
  const some = deviceLines({ iommu: { contextEntries: new Map([[1, {}]]), iotlb: [], faultRecords: [{}, {}] } } as unknown as MachineState, IOMMU);
  assert.deepEqual(some.map(lineText), ['IOMMU (VT-d):', '  contextEntries: 1 entries', '  iotlb: 0 entries', '  faultRecords: 2 entries']);
});
