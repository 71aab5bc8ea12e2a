/**
 * The chunk index (events/chunk-summary.ts, replay/chunk-search.ts): each chunk's row holds
 * exactly the kinds, domains and violations of its events (a brute-force fold over them);
 * its text filter never rules out a chunk holding a line that contains the text searched
 * (random events, random pieces of their lines); a search through the index finds what a
 * plain scan finds, across a fork's lineage and in a recording made without an index.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { kindMask, domainBit } from '../src/events/chunk-summary.ts';
import { ChunkBuilder, EventCodec, schemaCodecTables } from '../src/events/codec.ts';
import { makeEvent } from '../src/events/make-event.ts';
import { EVENT_KINDS, eventDomains, type Event, type Seq } from '../src/events/schema.ts';
import { CHUNK_EVENTS, RecordingStore, type RunRow } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { ChunkMatcher, chunkSearchOf, type ChunkQuery } from '../src/replay/chunk-search.ts';
import { forkRun } from '../src/replay/fork.ts';
import { eventText } from '../src/replay/format.ts';
import { recordScenario } from '../src/replay/recorder.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { BlockIndex, SUMMARIES_FROM_EVENTS } from '../src/tui/block-index.ts';
import { eventArbitrary, kindsWithoutArbitrary } from '../property-tests/arbitraries.ts';
import { loopScenario, removeDir, tempDir } from './helpers/cli.ts';

const NAMES = new Map([[0, 'dom0'], [1, 'alice'], [2, 'bob'], [3, 'carol']]);
/** Events of the kinds with arbitraries of their own (the generic ones break the schema's types, which no line is made of). */
const anyEvent = fc.oneof(...EVENT_KINDS.filter((kind) => !kindsWithoutArbitrary().includes(kind)).map(eventArbitrary));

function summaryOf(events: readonly Event[]) {
  const builder = new ChunkBuilder(new EventCodec(schemaCodecTables()));
  for (const event of events) builder.add(event);
  return builder.takeJournal().summary!;
}

describe('the text filter', () => {
  test('a chunk is never ruled out for a piece of one of its lines (random events, random pieces)', () => {
    // Text the filter must see as a search does: lowercased by toLowerCase, which turns the
    // Kelvin sign and the dotted capital I into ASCII letters.
    const tricky = fc.constantFrom('Kelvin \u212a', 'İstanbul', 'bob secret', 'CANARY-confined', 'a\nb "quoted"');
    const withText = anyEvent.chain((event) => tricky.map((text) => (event.kind === 'hypercall' ? { ...event, text } : event)));
    fc.assert(fc.property(fc.array(fc.oneof(anyEvent, withText), { minLength: 1, maxLength: 30 }), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 24 }), (events, pick, start, length) => {
      const summary = summaryOf(events);
      const event = events[pick % events.length];
      const line = eventText(event, NAMES).toLowerCase();
      const from = start % line.length;
      const piece = line.slice(from, from + length);
      const domains = eventDomains(event).reduce((bits, d) => (bits | domainBit(d)) >>> 0, 0);
      for (const query of [{ texts: [piece] }, { texts: [piece], kinds: kindMask([event.kind]) }, { texts: [piece, line.slice(0, 3)], domains: domains || undefined }] as ChunkQuery[]) {
        assert.ok(new ChunkMatcher(query, NAMES).mayMatch(summary), `${JSON.stringify(piece)} of ${JSON.stringify(line)} ruled out (${JSON.stringify(query.kinds ?? '')})`);
      }
    }), { numRuns: 2000 });
  });

  test('text that no line holds is ruled out, numbers never are', () => {
    const events = Array.from({ length: 200 }, (_, i) => makeEvent('hypercall', { dom: 1, vcpu: 0, op: 'console_write', args: [i], text: `line ${i} of the console`, result: 0 }));
    const summary = summaryOf(events);
    const may = (text: string): boolean => new ChunkMatcher({ texts: [text] }, NAMES).mayMatch(summary);
    assert.equal(may('the console'), true);
    assert.equal(may('console_write'), true, 'the op field');
    assert.equal(may('canary-confined'), false);
    assert.equal(may('zebra'), false);
    assert.equal(may('0xdead'), true, 'numbers and hex are never ruled out');
    assert.equal(may('hypercall dom=alice'), true, 'the kind, a field name and a domain name are words every such line may hold');
  });
});

describe('the chunk index of a recording', () => {
  let dir: string;
  let store: RecordingStore;
  let root: RunRow;
  let fork: RunRow;

  before(() => {
    dir = tempDir('chronovisor-chunk-index');
    store = RecordingStore.create(join(dir, 'index.db'), 'test');
    const text = loopScenario({ seed: 3, times: 50_000 }).replace('- yield', '- yield\n              - hypercall: { op: console_write, text: "tick" }');
    const identity = { scenarioText: text, scenarioPath: 'loop.yaml', config: '{}', simVersion: 'test', writerPid: process.pid };
    const recorded = recordScenario(store, parseScenario(text, 'loop.yaml'), { name: 'loop', ...identity });
    root = store.run(recorded.run);
    assert.ok(root.eventCount > SUMMARIES_FROM_EVENTS, `${root.eventCount} events: long enough for the TUI to index it from the chunk index`);
    // A fork three quarters in that prints something else: its chunks differ from the parent's from there.
    const at = Math.floor(root.eventCount * 0.75);
    const forked = forkRun(store, { parent: root, at, modifications: [['domain.alice.ops', '[{hypercall: {op: console_write, text: "forked here"}}]']], simVersion: 'test', writerPid: process.pid }, {});
    fork = store.run(forked.run);
  });

  after(() => {
    store?.close();
    removeDir(dir);
  });

  test('each chunk\'s row holds exactly the kinds, domains and violations of its events', () => {
    for (const run of [root, fork]) {
      const timeline = new Timeline(store, run);
      for (let first = run.baseSeq; first < run.eventCount; first += CHUNK_EVENTS) {
        const events = [...timeline.iterate(first, first + CHUNK_EVENTS)].map(([, e]) => e);
        const [row] = store.chunkSummaries(run.id, first, first + 1, 1, 1);
        assert.ok(row !== undefined, `run ${run.id} has a row for its chunk at ${first}`);
        const kinds = kindMask(events.map((e) => e.kind));
        assert.deepEqual([row.kindsLo, row.kindsHi], [kinds.lo, kinds.hi], `kinds of chunk ${first}`);
        const domains = events.flatMap(eventDomains).reduce((bits, d) => (bits | domainBit(d)) >>> 0, 0);
        assert.equal(row.domains, domains, `domains of chunk ${first}`);
        assert.equal(row.violations, events.filter((e) => e.kind === 'violation').length);
      }
    }
  });

  /** What a plain scan finds: the first seq from `from` in `direction` whose line holds `text`. */
  function scan(timeline: Timeline, text: string, from: Seq, direction: 1 | -1): Seq | undefined {
    for (let seq = from; seq >= 0 && seq < timeline.length; seq += direction) {
      if (eventText(timeline.event(seq), NAMES).toLowerCase().includes(text)) return seq;
    }
    return undefined;
  }

  /** The first chunk the index lets through, read to the end if need be. */
  function firstThrough(timeline: Timeline, text: string, from: Seq, direction: 1 | -1): Seq | undefined {
    const search = chunkSearchOf(timeline, { texts: [text] }, NAMES)!;
    for (let seq: Seq | undefined = from; ;) {
      const { found, next } = search.next(seq, direction, 3);
      if (found !== undefined || next === undefined) return found;
      seq = next;
    }
  }

  test('a search through the index lets through the chunk a scan finds, across the fork\'s lineage, both ways', () => {
    const timeline = new Timeline(store, fork);
    for (const [text, from, direction] of [['forked here', 0, 1], ['tick', 0, 1], ['forked here', fork.eventCount - 1, -1], ['tick', fork.eventCount - 1, -1]] as const) {
      const expected = scan(timeline, text, from, direction);
      assert.ok(expected !== undefined, text);
      const chunk = Math.floor(expected / CHUNK_EVENTS) * CHUNK_EVENTS;
      const through = firstThrough(timeline, text, from, direction);
      assert.ok(through !== undefined && (direction > 0 ? through <= chunk : through >= chunk), `${text}: index lets ${through} through, the match is in ${chunk}`);
    }
    assert.equal(firstThrough(timeline, 'forked here', 0, 1), Math.floor(fork.forkSeq! / CHUNK_EVENTS) * CHUNK_EVENTS, 'the parent\'s chunks are skipped');
    assert.equal(firstThrough(new Timeline(store, root), 'forked here', 0, 1), undefined, 'the parent never printed it');
  });

  test('the TUI\'s block index read from the chunk index holds what one read event by event does', () => {
    const timeline = new Timeline(store, fork);
    // The same recording without its chunk index, as one made before it existed.
    const copy = join(dir, 'no-index.db');
    store.db.exec(`VACUUM INTO '${copy}'`);
    const bare = RecordingStore.open(copy);
    bare.db.exec("DROP TABLE chunk_index; DELETE FROM meta WHERE key = 'chunk_index_version'");
    bare.close();
    const withoutIndex = RecordingStore.open(copy, { readonly: true });
    assert.equal(withoutIndex.hasChunkIndex, false);
    const fromRows = new BlockIndex(() => timeline);
    const byEvent = new BlockIndex(() => new Timeline(withoutIndex, withoutIndex.run(fork.id)));
    for (const index of [fromRows, byEvent]) {
      index.length = timeline.length;
      assert.equal(index.scan(Infinity, () => 0), true);
    }
    assert.equal(fromRows.blockSize, CHUNK_EVENTS, 'blocks of whole chunks');
    assert.deepEqual([...fromRows.names], [...byEvent.names]);
    assert.equal(fromRows.violations, byEvent.violations);
    for (let first = 0; first < timeline.length; first += CHUNK_EVENTS) {
      const to = Math.min(timeline.length, first + CHUNK_EVENTS);
      assert.deepEqual(fromRows.kindsIn(first, to), byEvent.kindsIn(first, to), `kinds of chunk ${first}`);
      for (const dom of [0, 1, 2]) assert.equal(fromRows.mayContain(fromRows.blockOf(first), undefined, 1 << dom), byEvent.mayContain(byEvent.blockOf(first), undefined, 1 << dom) || byEvent.mayContain(byEvent.blockOf(to - 1), undefined, 1 << dom));
    }
    withoutIndex.close();
  });

  // Last: it removes a row.
  test('a chunk recorded before the index (no row) may hold anything', () => {
    store.db.prepare('DELETE FROM chunk_index WHERE run = ? AND first_seq = ?').run(root.id, 2 * CHUNK_EVENTS);
    assert.equal(firstThrough(new Timeline(store, root), 'forked here', 0, 1), 2 * CHUNK_EVENTS);
    assert.equal(firstThrough(new Timeline(store, root), 'forked here', root.eventCount - 1, -1), 2 * CHUNK_EVENTS);
  });
});
