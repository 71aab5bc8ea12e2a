/**
 * `export jsonl` and `export perfetto` on the bundled network scenario, recorded in both
 * profiles (secure: DMA remapped by VT-d, MSIs remapped; vanilla: violations).
 *
 * - jsonl is byte for byte what `log --json` prints, one line per event.
 * - perfetto is parsed as JSON and checked against the Trace Event Format's documented rules
 *   (validateTraceEventFormat below, after the format's specification: required fields per
 *   phase, instant scopes, counters with numeric args, flows whose ends match, metadata
 *   names, and complete slices that nest on each thread), then against the recording read
 *   by brute force: one slice per VM exit ending at the vCPU's next entry, one pCPU slice per
 *   switch to a vCPU, one flow per DMA that reached memory (to its frame's track) and per
 *   delivered MSI (to its vCPU's track), one instant per violation, and counters that end at
 *   the final state's IOTLB and TLB sizes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordingStore } from '../src/events/store.ts';
import type { Event } from '../src/events/schema.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { cli, describeResult, parseJsonLines, removeDir, tempDir } from './helpers/cli.ts';

const NETWORK = fileURLToPath(new URL('../recordings/network.yaml', import.meta.url));

let dir: string;
before(async () => {
  dir = tempDir('chronovisor-export-events');
  for (const profile of ['secure', 'vanilla']) {
    // Cut where both have DMA, MSIs (secure) and violations (vanilla), to keep the test short.
    const args = ['run', NETWORK, '--out', 'net.db', '--profile', profile, '--max-events', '130000'];
    const r = await cli(args, dir);
    assert.equal(r.code, 0, describeResult(args, r));
  }
});
after(() => removeDir(dir));

/** The events of a run, read with the store API (the brute-force side of the checks). */
function recorded(run: number): { events: Event[]; iotlb: number; tlb: number; names: Map<number, string> } {
  const store = RecordingStore.open(join(dir, 'net.db'), { readonly: true });
  try {
    const timeline = new Timeline(store, store.run(run));
    const end = timeline.stateAt(timeline.length);
    let tlb = 0;
    for (const d of end.domains.values()) for (const v of d.vcpus) tlb += v.x86?.tlb.size ?? 0;
    return { events: timeline.events(0, timeline.length), iotlb: end.io.vtd.iotlb.size, tlb, names: new Map([...end.domains.values()].map((d) => [d.id, d.name])) };
  } finally {
    store.close();
  }
}

async function exportOk(format: string, run: number, out: string): Promise<string> {
  const args = ['export', format, 'net.db', '--run', String(run), '--out', out];
  const r = await cli(args, dir);
  assert.equal(r.code, 0, describeResult(args, r));
  return r.stderr;
}

describe('export jsonl', () => {
  test('the same lines as log --json, one per event, to a file and to standard output', async () => {
    const log = await cli(['log', 'net.db', '--run', '1', '--json'], dir);
    assert.equal(log.code, 0);
    const stderr = await exportOk('jsonl', 1, 'events.jsonl');
    const file = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    assert.equal(file, log.stdout);
    const { events } = recorded(1);
    assert.equal(parseJsonLines(file).length, events.length);
    assert.match(stderr, new RegExp(`^wrote ${events.length} events to events\\.jsonl \\(run 1 network-secure`));
    const piped = await cli(['export', 'jsonl', 'net.db', '--run', '1', '--out', '-'], dir);
    assert.equal(piped.code, 0);
    assert.equal(piped.stdout, log.stdout);
  });
});

interface TraceEvent { name: string; ph: string; pid: number; tid: number; ts?: number; dur?: number; cat?: string; id?: number; s?: string; bp?: string; args?: Record<string, unknown> }

/**
 * The Trace Event Format's rules for what this exporter writes (JSON Object Format): an
 * object with a traceEvents array; every event a name, a one-letter phase, numeric pid and
 * tid, and (but metadata) a numeric ts; X a dur >= 0; i a scope of g, p or t; C numeric args;
 * s/f an id, each f after an s of the same id, name and category, f binding to its
 * enclosing slice (bp e) that exists on its thread; M one of the metadata names with
 * args.name for names. Complete events on a thread must not overlap partially.
 */
function validateTraceEventFormat(trace: unknown): TraceEvent[] {
  assert.ok(trace !== null && typeof trace === 'object' && !Array.isArray(trace), 'the JSON Object Format: an object');
  const { traceEvents, displayTimeUnit } = trace as { traceEvents: unknown; displayTimeUnit?: unknown };
  assert.ok(Array.isArray(traceEvents), 'traceEvents is an array');
  assert.ok(displayTimeUnit === undefined || displayTimeUnit === 'ms' || displayTimeUnit === 'ns', 'displayTimeUnit is ms or ns');
  const events = traceEvents as TraceEvent[];
  const starts = new Map<number, TraceEvent>();
  const slices = new Map<string, [number, number][]>();
  events.forEach((e, i) => {
    const where = `event ${i} ${JSON.stringify(e).slice(0, 200)}`;
    assert.equal(typeof e.name, 'string', where);
    assert.ok(['X', 'i', 'C', 's', 'f', 'M'].includes(e.ph), `${where}: a phase this exporter uses`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid), `${where}: pid and tid`);
    if (e.ph !== 'M') assert.ok(typeof e.ts === 'number' && e.ts >= 0, `${where}: ts`);
    if (e.ph === 'X') {
      assert.ok(typeof e.dur === 'number' && e.dur >= 0, `${where}: dur`);
      const key = `${e.pid}:${e.tid}`;
      slices.set(key, [...(slices.get(key) ?? []), [e.ts!, e.ts! + e.dur!]]);
    }
    if (e.ph === 'i') assert.ok(['g', 'p', 't'].includes(e.s!), `${where}: instant scope`);
    if (e.ph === 'C') {
      assert.ok(e.args && Object.values(e.args).length > 0, `${where}: counter args`);
      for (const v of Object.values(e.args!)) assert.equal(typeof v, 'number', `${where}: counter values are numbers`);
    }
    if (e.ph === 's') {
      assert.ok(e.id !== undefined && !starts.has(e.id), `${where}: a new flow id`);
      starts.set(e.id!, e);
    }
    if (e.ph === 'f') {
      const start = starts.get(e.id!);
      assert.ok(start, `${where}: the flow's start comes first`);
      assert.equal(e.name, start.name, where);
      assert.equal(e.cat, start.cat, where);
      assert.ok(e.ts! >= start.ts!, `${where}: a flow ends after it starts`);
      assert.equal(e.bp, 'e', `${where}: binds to the enclosing slice`);
    }
    if (e.ph === 'M') {
      assert.ok(['process_name', 'process_labels', 'process_sort_index', 'thread_name', 'thread_sort_index'].includes(e.name), where);
      if (e.name.endsWith('_name')) assert.equal(typeof e.args?.name, 'string', where);
    }
  });
  // Flow ends bind to a slice that encloses them on their own thread; so do starts.
  for (const e of events.filter((x) => x.ph === 's' || x.ph === 'f')) {
    const enclosing = (slices.get(`${e.pid}:${e.tid}`) ?? []).some(([from, to]) => from <= e.ts! && e.ts! < to);
    assert.ok(enclosing, `flow ${e.ph} ${e.id} at ${e.ts} on ${e.pid}:${e.tid} has an enclosing slice`);
  }
  for (const [thread, list] of slices) {
    list.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const open: number[] = [];
    for (const [from, to] of list) {
      while (open.length > 0 && open[open.length - 1] <= from) open.pop();
      if (open.length > 0) assert.ok(to <= open[open.length - 1], `slices on ${thread} overlap without nesting at ${from}..${to}`);
      open.push(to);
    }
  }
  return events;
}

const isEntryOf = (e: Event, dom: number, vcpu: number): boolean => e.kind === 'vm.entry' && e.dom === dom && e.vcpu === vcpu;

describe('export perfetto', () => {
  for (const run of [1, 2]) {
    test(`run ${run}: valid Trace Event Format, and every track agrees with the recording`, async () => {
      await exportOk('perfetto', run, `trace-${run}.json`);
      const events = validateTraceEventFormat(JSON.parse(readFileSync(join(dir, `trace-${run}.json`), 'utf8')));
      const { events: recordedEvents, iotlb, tlb, names } = recorded(run);
      const threadName = new Map(events.filter((e) => e.name === 'thread_name').map((e) => [`${e.pid}:${e.tid}`, e.args!.name as string]));
      const processOf = new Map(events.filter((e) => e.name === 'process_name').map((e) => [e.args!.name as string, e.pid]));
      const on = (process: string, e: TraceEvent): string => { assert.equal(e.pid, processOf.get(process)); return threadName.get(`${e.pid}:${e.tid}`)!; };

      // VM exits: one slice each, on its vCPU's track, from the exit to that vCPU's next entry.
      const exits = events.filter((e) => e.ph === 'X' && e.name.startsWith('VM exit '));
      const expectedExits = recordedEvents.flatMap((e, seq) => {
        if (e.kind !== 'vm.exit') return [];
        let end = seq + 1;
        while (end < recordedEvents.length && !isEntryOf(recordedEvents[end], e.dom, e.vcpu)) end++;
        return [{ seq, track: `${names.get(e.dom)}.v${e.vcpu}`, end, reason: e.reason }];
      });
      assert.ok(expectedExits.length > 0, 'the scenario has VM exits');
      assert.deepEqual(exits.map((e) => ({ seq: e.ts!, track: on('vCPUs', e), end: e.ts! + e.dur!, reason: Number(/\((\d+)\)$/.exec(e.name)![1]) })).sort((a, b) => a.seq - b.seq), expectedExits);

      // pCPU tracks: a slice per switch to a vCPU, named after it.
      const running = events.filter((e) => e.ph === 'X' && e.pid === processOf.get('pCPUs'));
      const switches = recordedEvents.flatMap((e, seq) => (e.kind === 'sched.switch' && e.toDom >= 0 ? [{ seq, track: `pCPU ${e.pcpu}`, name: `${names.get(e.toDom)}.v${e.toVcpu}` }] : []));
      assert.deepEqual(running.map((e) => ({ seq: e.ts!, track: on('pCPUs', e), name: e.name })).sort((a, b) => a.seq - b.seq), switches);

      // Flows: from the device's DMA to the frame it reached, from the device's MSI to the vCPU.
      const ends = events.filter((e) => e.ph === 'f');
      const dmaFlows = ends.filter((e) => e.cat === 'dma').map((e) => ({ seq: e.ts, frame: on('memory', e) }));
      const expectedDma = recordedEvents.flatMap((e, seq) => (e.kind === 'dma.request' && e.hpa >= 0 ? [{ seq, frame: `mfn ${Math.floor(e.hpa / 4096)}` }] : []));
      const msiFlows = ends.filter((e) => e.cat === 'msi').map((e) => ({ seq: e.ts, vcpu: on('vCPUs', e) }));
      const expectedMsi = recordedEvents.flatMap((e, seq) => (e.kind === 'msi' && e.fault === 0 && e.dom >= 0 ? [{ seq, vcpu: `${names.get(e.dom)}.v${e.vcpu}` }] : []));
      assert.deepEqual(dmaFlows, expectedDma);
      assert.deepEqual(msiFlows, expectedMsi);
      if (run === 1) assert.ok(expectedDma.length > 0 && expectedMsi.length > 0, 'the secure run has remapped DMA and MSIs');

      // Violations as instants; counters end where the state ends.
      const violations = events.filter((e) => e.ph === 'i' && e.cat === 'violation').map((e) => e.ts);
      assert.deepEqual(violations, recordedEvents.flatMap((e, seq) => (e.kind === 'violation' ? [seq] : [])));
      if (run === 2) assert.ok(violations.length > 0, 'the vanilla run has violations');
      const last = (name: string): unknown => events.filter((e) => e.ph === 'C' && e.name === name).at(-1)?.args?.entries;
      assert.equal(last('IOTLB entries'), iotlb);
      assert.equal(last('TLB entries'), tlb);
    });
  }
});
