/**
 * The forensic index and the queries on it, against references that do not use it:
 *
 * - re-executing an x86 step (what finds reads and fetches) reproduces the recorded step:
 *   its register delta and the bytes its stores committed;
 * - the last write of every byte agrees with a brute-force fold over every event, and that
 *   fold is itself checked against the state: a byte whose stored value changed was written;
 * - the index gives the same accesses as walking the whole run without it (complete,
 *   stopped and forked runs; a run recorded in several chunks);
 * - a write's data bytes are all the bytes whose plaintext it changed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { STEP_OPENERS, type Event, type EventOf, type Seq } from '../src/events/schema.ts';
import { CHUNK_EVENTS, type RecordingStore, type RunRow } from '../src/events/store.ts';
import { PAGE_SIZE } from '../src/core/hypervisor/config.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { decodeVtdEffects } from '../src/core/hypervisor/vtd-driver/vtd-op.ts';
import { ownerPlaintext } from '../src/core/hypervisor/memory/smm.ts';
import { cpuDelta } from '../src/core/hardware/cpu/cpu-state.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { forkRun } from '../src/replay/fork.ts';
import { IndexBuild } from '../src/replay/forensics/index-build.ts';
import { ForensicIndex } from '../src/replay/forensics/index-query.ts';
import { replayX86Step } from '../src/replay/forensics/cpu-replay.ts';
import { StepWalker, type Access } from '../src/replay/forensics/steps.ts';
import { ForensicSession } from '../src/replay/forensics/session.ts';
import { provenance, type Hop, type Provenance } from '../src/replay/forensics/provenance.ts';
import { reach } from '../src/replay/forensics/reach.ts';
import { explain } from '../src/replay/forensics/explain.ts';
import { INVARIANT_CHECKERS } from '../src/core/machine/invariants/index.ts';
import { scenarioArbitrary } from './arbitraries.ts';
import { faultScenario, instructionScenario, timerScenario } from './x86-arbitraries.ts';
import { SIM_VERSION, TempDir, record, runs } from './helpers.ts';

const dir = new TempDir();
after(() => dir.cleanup());

const fraction = fc.double({ min: 0, max: 1, noNaN: true });
/** Scripted recordings in both profiles (some several chunks long), and x86 ones. */
const recordings = fc.oneof(
  { weight: 3, arbitrary: scenarioArbitrary().map((s) => s.text) },
  { weight: 1, arbitrary: scenarioArbitrary({ long: true }).map((s) => s.text) },
  { weight: 3, arbitrary: instructionScenario({ maxChunks: 8 }).map((s) => s.text) },
  { weight: 1, arbitrary: faultScenario().map((s) => s.text) },
  { weight: 1, arbitrary: timerScenario().map((s) => s.text) },
);

function buildIndex(store: RecordingStore, run: RunRow): ForensicIndex {
  const build = new IndexBuild(store, run);
  assert.equal(build.work(), true);
  build.commit();
  return new ForensicIndex(store, store.run(run.id));
}

test('re-executing an x86 step reproduces its recorded register delta and the bytes its stores committed', () => {
  fc.assert(fc.property(fc.oneof(instructionScenario({ maxChunks: 8 }), faultScenario(), timerScenario()), (scenario) => {
    const store = dir.store();
    const { row } = record(store, scenario.text);
    const timeline = new Timeline(store, row);
    const state = timeline.mutableStateAt(0);
    let step: { seq: Seq; replay: ReturnType<typeof replayX86Step>; events: Event[] } | undefined;
    const check = (): void => {
      if (step?.replay === undefined) return;
      const opener = step.events[0];
      if (opener.kind === 'cpu.step') {
        assert.equal(step.replay.outcome, 'retired', `seq ${step.seq}`);
        assert.equal(step.replay.before.eip, opener.eip, `seq ${step.seq}: eip`);
        assert.deepEqual(cpuDelta(step.replay.before, step.replay.after!, false), opener.delta, `seq ${step.seq}: the registers it changed`);
        assert.equal(step.replay.after!.eip, opener.next, `seq ${step.seq}: next eip`);
      }
      // Every committed store and page-walk write is a mem.write of the step, in order, on the frame and bytes named.
      const writes = step.events.filter((e) => e.kind === 'mem.write');
      const commits = opener.kind === 'vm.exit' ? step.replay.commits.filter((c) => c.kind === 'walk') : step.replay.commits;
      if (opener.kind !== 'vm.exit') assert.equal(writes.length, commits.length, `seq ${step.seq}: ${writes.length} mem.write, ${commits.length} commits`);
      commits.forEach((c, i) => {
        const w = writes[i] as Extract<Event, { kind: 'mem.write' }>;
        assert.equal(w.mfn, c.range.mfn, `seq ${step!.seq} write ${i}: frame`);
        assert.ok(w.offset <= c.range.offset && c.range.offset + c.range.length <= w.offset + w.stored.length, `seq ${step!.seq} write ${i}: bytes`);
      });
    };
    for (const [seq, event] of timeline.iterate()) {
      if (STEP_OPENERS.has(event.kind)) {
        check();
        step = { seq, replay: replayX86Step(state, event), events: [] };
      }
      step!.events.push(event);
      evolve(state, event);
    }
    check();
    store.close();
  }), { numRuns: runs(40) });
});

/**
 * The brute force: last writer per frame byte, by event kind alone (no index, no steps).
 * Every byte whose stored value an event changed must be one it names, which checks the
 * rules against the state itself.
 */
function bruteForceWrites(timeline: Timeline, from: Seq, at: readonly Seq[]): Map<Seq, Map<number, Int32Array>> {
  const state = timeline.mutableStateAt(from);
  const last = new Map<number, Int32Array>();
  const snapshots = new Map<Seq, Map<number, Int32Array>>();
  const wanted = [...at].sort((a, b) => a - b);
  const mark = (mfn: number, offset: number, length: number, seq: Seq): Set<number> => {
    let bytes = last.get(mfn);
    if (bytes === undefined) last.set(mfn, (bytes = new Int32Array(PAGE_SIZE).fill(-1)));
    for (let b = offset; b < offset + length; b++) bytes[b] = seq;
    return new Set(Array.from({ length }, (_, i) => mfn * PAGE_SIZE + offset + i));
  };
  let next = 0;
  for (const [seq, event] of timeline.iterate(from)) {
    while (next < wanted.length && wanted[next] === seq) snapshots.set(wanted[next++], new Map([...last].map(([m, b]) => [m, b.slice()])));
    const named = new Set<number>();
    const add = (s: Set<number>): void => { for (const x of s) named.add(x); };
    if (event.kind === 'mem.write') add(mark(event.mfn, event.offset, event.stored.length, seq));
    if (event.kind === 'smm.scrub') add(mark(event.mfn, 0, PAGE_SIZE, seq));
    if (event.kind === 'vtd.op') {
      for (const mfn of event.free) add(mark(mfn, 0, PAGE_SIZE, seq));
      for (let i = 0; i + 2 < event.words.length; i += 3) add(mark(Math.floor(event.words[i] / PAGE_SIZE), event.words[i] % PAGE_SIZE, 8, seq));
    }
    if (event.kind === 'vtd.op' || event.kind === 'dma.request' || event.kind === 'msi') {
      for (const e of decodeVtdEffects(event.effects)) if (e.kind === 'memory.write32') add(mark(Math.floor(e.hpa / PAGE_SIZE), e.hpa % PAGE_SIZE, 4, seq));
    }
    const before = new Map([...state.memory].map(([m, p]) => [m, p.bytes]));
    evolve(state, event);
    for (const mfn of new Set([...before.keys(), ...state.memory.keys()])) {
      const a = before.get(mfn);
      const b = state.memory.get(mfn)?.bytes;
      if (a === b) continue;
      for (let i = 0; i < PAGE_SIZE; i++) {
        if ((a?.[i] ?? 0) !== (b?.[i] ?? 0)) assert.ok(named.has(mfn * PAGE_SIZE + i), `seq ${seq} (${event.kind}) changed byte ${i} of frame ${mfn}, which the brute force does not count as written`);
      }
    }
  }
  while (next < wanted.length) snapshots.set(wanted[next++], new Map([...last].map(([m, b]) => [m, b.slice()])));
  return snapshots;
}

test('who-wrote: the last write of every byte agrees with a brute-force fold over every event', () => {
  fc.assert(fc.property(recordings, fc.array(fraction, { minLength: 1, maxLength: 6 }), (text, fractions) => {
    const store = dir.store();
    const { row } = record(store, text);
    const index = buildIndex(store, row);
    const timeline = new Timeline(store, row);
    const at = fractions.map((f) => Math.floor(f * row.eventCount));
    const truth = bruteForceWrites(timeline, 0, at);
    for (const seq of at) {
      for (const [mfn, bytes] of truth.get(seq)!) {
        const found = index.lastWrites({ mfn, offset: 0, length: PAGE_SIZE }, seq);
        for (let b = 0; b < PAGE_SIZE; b++) assert.equal(found[b]?.seq ?? -1, bytes[b], `frame ${mfn} byte ${b} before seq ${seq}`);
      }
    }
    store.close();
  }), { numRuns: runs(30) });
});

/** Every access of a run, walking it from its start without the index. */
function directAccesses(timeline: Timeline): Access[] {
  const all: Access[] = [];
  const start = timeline.loadCheckpoint(0);
  const walker = new StepWalker(start.state, (step) => all.push(...step.accesses));
  for (const [seq, event] of timeline.iterate(start.seq)) walker.feed(seq, event);
  walker.finish();
  return all;
}

function assertSameAccesses(index: ForensicIndex, direct: Access[], from: Seq, to: Seq, what: string): void {
  const byFrame = new Map<number, Access[]>();
  for (const a of direct) if (a.seq >= from && a.seq < to) byFrame.set(a.mfn, [...(byFrame.get(a.mfn) ?? []), a]);
  for (const [mfn, expected] of byFrame) {
    const found = [...index.accesses(mfn, from, to)];
    const key = (a: Access): string => `${a.seq}:${a.kind}:${a.offset}:${a.length}:${a.dataOffset}:${a.dataLength}`;
    assert.deepEqual(found.map(key), expected.map(key), `${what}: frame ${mfn}, seqs ${from}..${to}`);
  }
}

test('history: the index gives the same accesses as walking the run without it (complete, stopped and forked runs)', () => {
  fc.assert(fc.property(recordings, fraction, fraction, fc.boolean(), fraction, (text, a, b, stop, forkAt) => {
    const store = dir.store();
    const { row } = record(store, text, stop ? { maxEvents: 1 + Math.floor(CHUNK_EVENTS * 1.5 * a) } : {});
    const index = buildIndex(store, row);
    const timeline = new Timeline(store, row);
    const direct = directAccesses(timeline);
    const [from, to] = [Math.floor(Math.min(a, b) * row.eventCount), Math.ceil(Math.max(a, b) * row.eventCount)];
    assertSameAccesses(index, direct, 0, row.eventCount, 'whole run');
    assertSameAccesses(index, direct, from, to, 'a range');
    // A fork shares its parent's chunks below its base: the parent's rows answer for them.
    const at = timeline.stepBoundaryAtOrBefore(Math.floor(forkAt * (row.eventCount - 1)));
    const fork = forkRun(store, { parent: row, at, modifications: [['quantum', '2']], name: 'fork', simVersion: SIM_VERSION, writerPid: process.pid }, { maxEvents: 3000 });
    const forkRow = store.run(fork.run);
    const forkIndex = buildIndex(store, forkRow);
    assertSameAccesses(forkIndex, directAccesses(new Timeline(store, forkRow)), 0, forkRow.eventCount, 'fork');
    store.close();
  }), { numRuns: runs(25) });
});

test('a write\'s data bytes are every byte whose plaintext it changed (SMM re-encrypts the rest of its lines as they were)', () => {
  fc.assert(fc.property(recordings, (text) => {
    const store = dir.store();
    const { row } = record(store, text);
    const timeline = new Timeline(store, row);
    const start = timeline.loadCheckpoint(0);
    let before: Map<number, Uint8Array> = new Map();
    const walker = new StepWalker(start.state, (step) => {
      for (const w of step.writes) {
        assert.ok(w.dataOffset >= w.event.offset && w.dataOffset + w.dataLength <= w.event.offset + w.event.stored.length, `seq ${w.seq}: data inside what was stored`);
      }
    });
    for (const [seq, event] of timeline.iterate(start.seq)) {
      const state = walker.current;
      const owner = event.kind === 'mem.write' ? state.ppt.get(event.mfn)?.owner : undefined;
      if (event.kind === 'mem.write') before = new Map([[event.mfn, ownerPlaintext(state, event.mfn, event.offset, event.stored.length)]]);
      walker.feed(seq, event);
      if (event.kind !== 'mem.write' || state.ppt.get(event.mfn)?.owner !== owner) continue;
      const after = ownerPlaintext(walker.current, event.mfn, event.offset, event.stored.length);
      const access = walker.lastWrite;
      assert.ok(access !== undefined);
      for (let i = 0; i < after.length; i++) {
        const byte = event.offset + i;
        if (before.get(event.mfn)![i] !== after[i]) {
          assert.ok(byte >= access.dataOffset && byte < access.dataOffset + access.dataLength, `seq ${seq}: byte ${byte} changed outside the data bytes ${access.dataOffset}+${access.dataLength}`);
        }
      }
    }
    store.close();
  }), { numRuns: runs(30) });
});

// ---- provenance ------------------------------------------------------------------------------

/** The origins reached from the hops that made the queried bytes. */
function originsOf(result: Provenance): Hop[] {
  const seen = new Set<number>();
  const found: Hop[] = [];
  const visit = (id: number): void => {
    if (seen.has(id)) return;
    seen.add(id);
    const hop = result.hops[id];
    if (hop.origin !== undefined) found.push(hop);
    hop.from.forEach(visit);
  };
  result.roots.forEach(visit);
  return found;
}

test('provenance of a planted secret ends at its plant while no later write changed it (scripted guests, both profiles)', () => {
  fc.assert(fc.property(scenarioArbitrary(), fraction, fc.nat(), (scenario, when, pick) => {
    const store = dir.store();
    const { row } = record(store, scenario.text);
    buildIndex(store, row);
    const session = new ForensicSession(store, store.run(row.id));
    const timeline = session.timeline;
    const plants = [...timeline.iterate()].filter(([, e]) => e.kind === 'guest.canary') as [Seq, EventOf<'guest.canary'>][];
    if (plants.length === 0) { store.close(); return; }
    const [plantSeq, plant] = plants[pick % plants.length];
    const at = plantSeq + 1 + Math.floor(when * (row.eventCount - plantSeq - 1));
    // The brute force: for every frame byte, the scripted write that last set it (by the operation's own bytes), or the scrub or other write.
    const last = scriptedWriters(timeline, at);
    const state = timeline.stateAt(at);
    const domain = state.domains.get(plant.dom);
    for (let i = 0; i < plant.secret.length; i++) {
      const gpa = plant.gpa + i;
      const mfn = domain?.p2m.get(Math.floor(gpa / PAGE_SIZE));
      if (mfn === undefined) continue;
      const expected = last.get(mfn * PAGE_SIZE + (gpa % PAGE_SIZE));
      const origins = originsOf(provenance(session, { kind: 'memory', ranges: [{ mfn, offset: gpa % PAGE_SIZE, length: 1 }] }, at));
      assert.equal(origins.length, 1, `byte ${i} of the canary planted at seq ${plantSeq}: one origin, got ${origins.map((o) => o.origin).join(' | ')}`);
      const origin = origins[0].origin!;
      if (expected === undefined) assert.match(origin, /^uninitialised/);
      else if (expected.kind === 'canary') assert.match(origin, new RegExp(`^scenario plant: the canary secret .* planted \\(guest\\.canary at seq ${expected.seq}\\)$`), `byte ${i} at seq ${at}`);
      else if (expected.kind === 'op') assert.match(origin, /^scenario: .*'s operation #\d+/, `byte ${i} at seq ${at}`);
      else assert.match(origin, /^scrubbed at seq|^uninitialised|^a write of unknown source|^the device/, `byte ${i} at seq ${at}: ${origin}`);
    }
    store.close();
  }), { numRuns: runs(30) });
});

/** Last setter of every frame byte before `at`, from the scripted operations' own bytes (not from the index). */
function scriptedWriters(timeline: Timeline, at: Seq): Map<number, { kind: 'canary' | 'op' | 'other'; seq: Seq }> {
  const last = new Map<number, { kind: 'canary' | 'op' | 'other'; seq: Seq }>();
  let canary: Seq | undefined;
  let opEnd: number | undefined;
  for (const [seq, event] of timeline.iterate(0, at)) {
    if (STEP_OPENERS.has(event.kind)) { canary = undefined; opEnd = undefined; }
    if (event.kind === 'guest.op') {
      const op = timeline.stateAt(seq).domains.get(event.dom)?.programs[event.vcpu]?.[event.pc];
      opEnd = op?.op === 'write' ? op.gpa + op.bytes.length : undefined;
    }
    if (event.kind === 'guest.canary') { canary = seq; opEnd = event.gpa + event.secret.length; }
    if (event.kind === 'smm.scrub') for (let b = 0; b < PAGE_SIZE; b++) last.set(event.mfn * PAGE_SIZE + b, { kind: 'other', seq });
    if (event.kind !== 'mem.write') continue;
    const scripted = opEnd !== undefined && event.gpa >= 0;
    const start = scripted ? event.gpa % PAGE_SIZE : event.offset;
    const end = scripted ? Math.min(PAGE_SIZE, start + opEnd! - event.gpa) : event.offset + event.stored.length;
    for (let b = start; b < end; b++) last.set(event.mfn * PAGE_SIZE + b, { kind: canary !== undefined ? 'canary' : scripted ? 'op' : 'other', seq: canary ?? seq });
  }
  return last;
}

/**
 * x86: secrets planted by immediate stores, moved around between memory and registers by
 * random copies (mov, xchg, push/pop, byte stores, movzx), overwritten by other immediates.
 * A small model says which immediate each byte of each slot holds at the end; provenance of
 * each byte must end at exactly that immediate (or the zero of a movzx, or nothing written).
 */
type Label = string;
const REGS = ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi'];
const LOW = { eax: 'al', ebx: 'bl', ecx: 'cl', edx: 'dl' } as Record<string, string>;
const SLOTS = 4;
const SLOT_BASE = 0x3000;

const copyOp = fc.oneof(
  fc.record({ op: fc.constant('load' as const), r: fc.nat(REGS.length - 1), s: fc.nat(SLOTS - 1) }),
  fc.record({ op: fc.constant('store' as const), r: fc.nat(REGS.length - 1), s: fc.nat(SLOTS - 1) }),
  fc.record({ op: fc.constant('store8' as const), r: fc.nat(3), s: fc.nat(SLOTS - 1), b: fc.nat(3) }),
  fc.record({ op: fc.constant('movrr' as const), r: fc.nat(REGS.length - 1), q: fc.nat(REGS.length - 1) }),
  fc.record({ op: fc.constant('xchg' as const), r: fc.nat(REGS.length - 1), q: fc.nat(REGS.length - 1) }),
  fc.record({ op: fc.constant('pushpop' as const), r: fc.nat(REGS.length - 1), q: fc.nat(REGS.length - 1) }),
  fc.record({ op: fc.constant('imm' as const), r: fc.nat(REGS.length - 1) }),
  fc.record({ op: fc.constant('zx' as const), r: fc.nat(REGS.length - 1), s: fc.nat(SLOTS - 1), b: fc.nat(3) }),
);

function copyProgram(ops: { op: string; r?: number; q?: number; s?: number; b?: number }[]): { asm: string; slots: Label[][] } {
  const regs = new Map<string, Label[]>(REGS.map((r) => [r, [0, 1, 2, 3].map(() => 'reset')]));
  const slots: Label[][] = Array.from({ length: SLOTS }, () => [0, 1, 2, 3].map(() => 'uninitialised'));
  const lines = ['bits 32', 'org 0x1000', '  mov esp, 0x9000'];
  let next = 0;
  const imm = (): { value: string; label: Label } => {
    const value = `0x${(0x51000000 + ++next * 0x10101).toString(16)}`;
    return { value, label: value };
  };
  for (let s = 0; s < 2; s++) {
    const v = imm();
    lines.push(`  mov dword [${SLOT_BASE + 4 * s}], ${v.value}`);
    slots[s] = [0, 1, 2, 3].map(() => v.label);
  }
  const slot = (s: number, b = 0): string => `0x${(SLOT_BASE + 4 * s + b).toString(16)}`;
  for (const o of ops) {
    const r = REGS[o.r ?? 0];
    const q = REGS[o.q ?? 0];
    switch (o.op) {
      case 'load': lines.push(`  mov ${r}, [${slot(o.s!)}]`); regs.set(r, [...slots[o.s!]]); break;
      case 'store': lines.push(`  mov [${slot(o.s!)}], ${r}`); slots[o.s!] = [...regs.get(r)!]; break;
      case 'store8': { const reg = REGS[o.r!]; lines.push(`  mov [${slot(o.s!, o.b!)}], ${LOW[reg]}`); slots[o.s!][o.b!] = regs.get(reg)![0]; break; }
      case 'movrr': lines.push(`  mov ${r}, ${q}`); regs.set(r, [...regs.get(q)!]); break;
      case 'xchg': { lines.push(`  xchg ${r}, ${q}`); const a = regs.get(r)!; regs.set(r, regs.get(q)!); regs.set(q, a); break; }
      case 'pushpop': lines.push(`  push ${r}`, `  pop ${q}`); regs.set(q, [...regs.get(r)!]); break;
      case 'imm': { const v = imm(); lines.push(`  mov ${r}, ${v.value}`); regs.set(r, [0, 1, 2, 3].map(() => v.label)); break; }
      case 'zx': lines.push(`  movzx ${r}, byte [${slot(o.s!, o.b!)}]`); regs.set(r, [slots[o.s!][o.b!], 'zero', 'zero', 'zero']); break;
    }
  }
  lines.push('  mov eax, 29', '  mov ebx, 2', '  vmcall', 'done:', '  jmp done');
  return { asm: `${lines.join('\n')}\n`, slots };
}

test('provenance through x86 copies ends at the immediate that planted each byte (a model of the copies says which)', () => {
  fc.assert(fc.property(fc.array(copyOp, { maxLength: 30 }), fc.constantFrom('secure', 'vanilla'), fc.constantFrom('ept', 'shadow'), (ops, profile, paging) => {
    const { asm, slots } = copyProgram(ops);
    const text = `seed: 5\nmachine: { memoryMiB: 2, pcpus: 1, profile: ${profile} }\ndom0: { memoryKiB: 16 }\ndomains:\n  - name: guest\n    memoryKiB: 64\n    paging: ${paging}\n    guest: { x86: { asm: ${JSON.stringify(asm)} } }\n`;
    const store = dir.store();
    const { row } = record(store, text);
    buildIndex(store, row);
    const session = new ForensicSession(store, store.run(row.id));
    // Just before the shutdown hypercall's exit: the last cpu.step (the guest's memory is still mapped).
    const events = [...session.timeline.iterate()];
    const at = events.findLastIndex(([, e]) => e.kind === 'cpu.step') + 1;
    for (let s = 0; s < SLOTS; s++) {
      for (let b = 0; b < 4; b++) {
        const resolved = session.resolve(`gpa:guest:0x${(SLOT_BASE + 4 * s + b).toString(16)}`, at);
        const origins = originsOf(provenance(session, resolved, at));
        const label = slots[s][b];
        const where = `slot ${s} byte ${b} (${label})\n${asm}`;
        assert.equal(origins.length, 1, `${where}: one origin, got ${origins.map((o) => o.origin).join(' | ')}`);
        const origin = origins[0].origin!;
        if (label === 'uninitialised') assert.match(origin, /^uninitialised/, where);
        else if (label === 'reset') assert.match(origin, /^the register as the vCPU started/, where);
        else if (label === 'zero') assert.match(origin, /^a constant the processor made for movzx/, where);
        else assert.match(origin, new RegExp(`^an immediate of mov [^,]+, ${label} `), where);
      }
    }
    store.close();
  }), { numRuns: runs(40) });
});

// ---- reach -----------------------------------------------------------------------------------

test('reach of a planted secret lists every read of its bytes before they are overwritten, and every read it lists has the plant in its provenance', () => {
  fc.assert(fc.property(scenarioArbitrary(), fc.nat(), (scenario, pick) => {
    const store = dir.store();
    const { row } = record(store, scenario.text);
    buildIndex(store, row);
    const session = new ForensicSession(store, store.run(row.id));
    const events = [...session.timeline.iterate()];
    const plants = events.filter(([, e]) => e.kind === 'guest.canary');
    if (plants.length === 0) { store.close(); return; }
    const [plantSeq] = plants[pick % plants.length];
    // The plant's write (the mem.write of its step: none when its gpa is outside the domain), and the position right after it.
    const end = events.findIndex(([seq, e]) => seq > plantSeq && STEP_OPENERS.has(e.kind));
    const written = events.slice(plantSeq + 1, end < 0 ? undefined : end).find(([, e]) => e.kind === 'mem.write') as [Seq, EventOf<'mem.write'>] | undefined;
    if (written === undefined) { store.close(); return; }
    const [writeSeq, write] = written;
    const plant = events[plantSeq][1] as EventOf<'guest.canary'>;
    const offset = plant.gpa % PAGE_SIZE;
    const length = Math.min(plant.secret.length, PAGE_SIZE - offset);
    const at = writeSeq + 1;
    const result = reach(session, { kind: 'memory', ranges: [{ mfn: write.mfn, offset, length }] }, at, { to: row.eventCount, limit: 1_000_000 });
    const reported = new Set(result.events.filter((e) => e.kind === 'read').map((e) => e.seq));
    // Brute force, completeness: a read of a byte that nothing has written since the plant is reported.
    const untouched = new Set(Array.from({ length }, (_, i) => write.mfn * PAGE_SIZE + offset + i));
    for (const [seq, e] of events.slice(at)) {
      if (e.kind === 'mem.write') for (let b = e.offset; b < e.offset + e.stored.length; b++) untouched.delete(e.mfn * PAGE_SIZE + b);
      if (e.kind === 'smm.scrub') for (let b = 0; b < PAGE_SIZE; b++) untouched.delete(e.mfn * PAGE_SIZE + b);
      if (e.kind !== 'mem.read' && e.kind !== 'dom0.foreign_read') continue;
      const size = e.kind === 'mem.read' ? e.stored.length : e.value.length;
      const hits = Array.from({ length: size }, (_, i) => e.mfn * PAGE_SIZE + e.offset + i).some((b) => untouched.has(b));
      if (hits) assert.ok(reported.has(seq), `the ${e.kind} at seq ${seq} reads planted bytes no one overwrote: reach must list it`);
    }
    // Soundness, through provenance: the bytes of every reported read came from the plant.
    for (const e of result.events.filter((x) => x.kind === 'read')) {
      for (const part of e.bytes.split(' + ').filter((b) => b.startsWith('mfn:'))) {
        const origins = originsOf(provenance(session, session.resolve(part, e.seq), e.seq));
        assert.ok(origins.some((o) => o.origin!.includes(`(guest.canary at seq ${plantSeq})`)), `read at seq ${e.seq} of ${part}: origins ${origins.map((o) => o.origin).join(' | ')}`);
      }
    }
    store.close();
  }), { numRuns: runs(30) });
});

// ---- explain ---------------------------------------------------------------------------------

/**
 * The two-tenants story at random: alice plants canaries and writes, bob writes a secret and
 * gives pages back, carol scans what she gets, dom0 reads alice's pages; both profiles. The
 * vanilla runs break canary-confined, dom0-no-plaintext and scrub-between-owners.
 */
const leakScenario = fc.record({
  profile: fc.constantFrom('secure', 'vanilla'),
  seed: fc.nat(1000),
  canaries: fc.array(fc.record({ page: fc.integer({ min: 1, max: 3 }), offset: fc.integer({ min: 0, max: 3000 }), secret: fc.string({ minLength: 8, maxLength: 40 }) }), { minLength: 1, maxLength: 3 }),
  writes: fc.array(fc.record({ page: fc.integer({ min: 1, max: 3 }), offset: fc.integer({ min: 0, max: 4000 }), hex: fc.uint8Array({ minLength: 1, maxLength: 64 }) }), { maxLength: 3 }),
  reads: fc.array(fc.record({ at: fc.integer({ min: 4, max: 40 }), gfn: fc.integer({ min: 1, max: 3 }), offset: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4000 })), len: fc.oneof(fc.constant(4096), fc.integer({ min: 1, max: 300 })) }), { minLength: 1, maxLength: 3 }),
  give: fc.boolean(),
}).map((c) => {
  const alice = [
    ...c.canaries.map((k) => `        - canary: { gpa: ${k.page * 4096 + k.offset}, secret: ${JSON.stringify(`alice#${k.secret}`)} }`),
    ...c.writes.map((w) => `        - write: { gpa: ${w.page * 4096 + w.offset}, hex: "${Buffer.from(w.hex).toString('hex')}" }`),
  ];
  const actions = c.reads.map((r) => `    - { at: ${r.at}, op: foreign_read, domain: alice, gfn: ${r.gfn}, offset: ${r.offset}, len: ${Math.min(r.len, 4096 - r.offset)} }`);
  return `seed: ${c.seed}
machine: { memoryMiB: 2, pcpus: 1, profile: ${c.profile}, quantum: 3 }
dom0:
  memoryKiB: 64
  actions:
${actions.join('\n')}
domains:
  - name: alice
    memoryKiB: 16
    guest:
      ops:
${alice.join('\n')}
  - name: bob
    memoryKiB: 16
    guest:
      ops:
        - canary: { gpa: 0x2000, secret: "bob#secret" }
${c.give ? '        - hypercall: { op: decrease_reservation, gfns: [2] }\n' : ''}  - name: carol
    memoryKiB: 16
    start: 12
    guest:
      ops:
        - scan
`;
});

test('explain: the access is an event the invariant watches, earlier in the violation\'s step; the chain is ordered and ends with it; a canary read has a plant among its origins', () => {
  let explained = 0;
  fc.assert(fc.property(leakScenario, (text) => {
    const store = dir.store();
    const { row } = record(store, text);
    buildIndex(store, row);
    const session = new ForensicSession(store, store.run(row.id));
    const events = [...session.timeline.iterate()];
    for (const [seq, v] of events) {
      if (v.kind !== 'violation') continue;
      explained++;
      const x = explain(session, seq);
      const checker = INVARIANT_CHECKERS.find((c) => c.name === v.invariant)!;
      assert.equal(x.rule, checker.rule);
      const access = events[x.access.seq][1];
      assert.ok(x.access.seq < seq && checker.kinds.includes(access.kind), `violation ${seq} (${v.invariant}): access ${x.access.seq} is a ${access.kind}`);
      // Same step: no step opener after the access up to the violation.
      assert.ok(events.slice(x.access.seq + 1, seq).every(([, e]) => !STEP_OPENERS.has(e.kind)), `violation ${seq}: access ${x.access.seq} in another step`);
      if ((access.kind === 'mem.read' || access.kind === 'dom0.foreign_read') && v.mfn >= 0) assert.equal(access.mfn, v.mfn);
      assert.deepEqual(x.chain.slice(-2), [x.access.seq, seq]);
      assert.ok(x.chain.every((c, i) => i === 0 || x.chain[i - 1] < c), `chain ${x.chain.join(' ')}`);
      for (const e of x.enabling) {
        assert.ok(e.seq < x.access.seq && ['own', 'key', 'map', 'unmap'].includes(e.access), `enabling ${e.seq} ${e.access}`);
        assert.match(e.bytes, new RegExp(`^mfn:${v.mfn}\\b`));
      }
      if (v.invariant === 'canary-confined') {
        const origins = x.data!.provenance.origins.map((id) => x.data!.provenance.hops[id].origin!);
        assert.ok(origins.some((o) => o.startsWith('scenario plant: ')), `canary read at ${x.access.seq}: origins ${origins.join(' | ')}`);
      }
    }
    store.close();
  }), { numRuns: runs(30) });
  assert.ok(explained > 0, 'some recordings had violations to explain');
});
