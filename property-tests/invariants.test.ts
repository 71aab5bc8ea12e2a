/**
 * Isolation properties of the simulated machine:
 * - the secure profile (SMM) holds against hostile guests and a curious dom0: no violation;
 * - the simulator never throws on a valid scenario, in either profile, and its frame
 *   bookkeeping stays consistent;
 * - vanilla Xen leaks a canary to dom0's foreign mapping, and the invariants say so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import yaml from 'js-yaml';
import type { Event, EventOf } from '../src/events/schema.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { XEN_RESERVED_FRAMES } from '../src/core/hypervisor/config.ts';
import { initialState, type MachineState } from '../src/core/machine/state.ts';
import { nextStep } from '../src/replay/recorder.ts';
import { scenarioArbitrary, unicodeText } from './arbitraries.ts';
import { runs } from './helpers.ts';

const MAX_EVENTS = 300_000;

function run(config: MachineState['config']): { events: Event[]; state: MachineState } {
  const machine = new Machine(initialState(config));
  const events: Event[] = [];
  while (!machine.state.halted) {
    events.push(...nextStep(machine));
    assert.ok(events.length <= MAX_EVENTS, `the machine did not halt within ${MAX_EVENTS} events`);
  }
  return { events, state: machine.state };
}

const violations = (events: Event[]): EventOf<'violation'>[] => events.filter((e): e is EventOf<'violation'> => e.kind === 'violation');
const describeViolations = (events: Event[]): string =>
  violations(events).map((v) => `${v.invariant} dom=${v.dom} mfn=${v.mfn}: ${v.detail}`).join('\n');

/** Frames, owners, maps and the free pool agree with each other. */
function checkBookkeeping(s: MachineState): void {
  const frames = s.config.frames;
  assert.ok(s.nextFresh >= XEN_RESERVED_FRAMES && s.nextFresh <= frames, `nextFresh ${s.nextFresh} outside [${XEN_RESERVED_FRAMES}, ${frames}]`);
  const free = new Set(s.freeStack);
  assert.equal(free.size, s.freeStack.length, 'a frame is on the free stack twice');
  for (const mfn of s.freeStack) {
    assert.ok(mfn >= XEN_RESERVED_FRAMES && mfn < s.nextFresh, `free frame ${mfn} was never allocated`);
    assert.ok(!s.ppt.has(mfn), `frame ${mfn} is both free and owned by ${s.ppt.get(mfn)?.owner}`);
  }
  for (const mfn of s.ppt.keys()) assert.ok(mfn >= XEN_RESERVED_FRAMES && mfn < s.nextFresh, `owned frame ${mfn} was never allocated`);
  assert.equal(s.ppt.size + s.freeStack.length + (frames - s.nextFresh), frames - XEN_RESERVED_FRAMES, 'owned + free + fresh frames do not add up');
  let mapped = 0;
  for (const d of s.domains.values()) {
    if (d.status === 'dead') {
      assert.equal(d.p2m.size, 0, `dead domain ${d.name} still maps frames`);
      assert.ok(!s.keyTable.has(d.id), `dead domain ${d.name} still has a key`);
    }
    assert.ok(d.p2m.size <= d.maxPages || d.id === 0, `domain ${d.name} holds ${d.p2m.size} pages, more than its ${d.maxPages}`);
    for (const [gfn, mfn] of d.p2m) {
      mapped++;
      assert.equal(s.ppt.get(mfn)?.owner, d.id, `domain ${d.name} maps frame ${mfn} at gfn ${gfn}, owned by ${s.ppt.get(mfn)?.owner}`);
      assert.deepEqual(s.m2p.get(mfn), { dom: d.id, gfn }, `m2p of frame ${mfn}`);
    }
  }
  assert.equal(s.m2p.size, mapped, 'm2p holds entries no p2m has');
  assert.equal(s.ppt.size, mapped, 'owned frames that no domain maps');
}

test('secure profile: no random scenario produces a violation (hostile guests, curious dom0)', () => {
  fc.assert(fc.property(scenarioArbitrary({ profiles: ['secure'], inputProfiles: ['secure'] }), (scenario) => {
    const { events } = run(scenario.config);
    assert.equal(violations(events).length, 0, describeViolations(events));
  }), { numRuns: runs(600) });
});

test('the simulator never throws, always halts, and keeps its frame bookkeeping consistent (both profiles)', () => {
  const scenarios = fc.oneof({ weight: 9, arbitrary: scenarioArbitrary() }, { weight: 1, arbitrary: scenarioArbitrary({ long: true }) });
  fc.assert(fc.property(scenarios, (scenario) => {
    const { events, state } = run(scenario.config);
    assert.equal(events[0].kind, 'machine.boot');
    assert.equal(events[events.length - 1].kind, 'machine.halt');
    assert.equal(state.violations, violations(events).length);
    checkBookkeeping(state);
  }), { numRuns: runs(600) });
});

test('bookkeeping holds at every step boundary, not only at the end', () => {
  fc.assert(fc.property(scenarioArbitrary(), (scenario) => {
    const machine = new Machine(initialState(scenario.config));
    let steps = 0;
    while (!machine.state.halted) {
      nextStep(machine);
      checkBookkeeping(machine.state);
      assert.ok(++steps < MAX_EVENTS);
    }
  }), { numRuns: runs(150) });
});

/** A tenant plants a canary; dom0 maps that frame and reads over it. */
const canaryLeak = fc.record({
  seed: fc.integer({ min: 0, max: 1_000_000 }),
  pcpus: fc.integer({ min: 1, max: 3 }),
  quantum: fc.integer({ min: 1, max: 5 }),
  pages: fc.integer({ min: 2, max: 16 }),
  secret: fc.option(unicodeText(40).map((t) => `tenant-secret:${t}`).filter((t) => t.length <= 256), { nil: undefined }),
  generatedLen: fc.integer({ min: 16, max: 256 }),
  at: fc.integer({ min: 2, max: 12 }),
  place: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
  bystander: fc.boolean(),
}).map((p) => {
  const secretBytes = p.secret === undefined ? p.generatedLen : new TextEncoder().encode(p.secret).length;
  const gfn = Math.min(p.pages - 1, 1 + Math.floor(p.place[0] * (p.pages - 1)));
  const canaryOffset = Math.floor(p.place[1] * (4096 - secretBytes));
  const readOffset = Math.floor(p.place[2] * canaryOffset);
  const need = canaryOffset + secretBytes - readOffset;
  const readLen = need + Math.floor(p.place[3] * (4096 - readOffset - need));
  const canary = p.secret === undefined ? { gpa: gfn * 4096 + canaryOffset, len: p.generatedLen } : { gpa: gfn * 4096 + canaryOffset, secret: p.secret };
  const doc = {
    seed: p.seed,
    machine: { memoryMiB: 2, pcpus: p.pcpus, profile: 'vanilla', quantum: p.quantum },
    dom0: { memoryKiB: 64, actions: [{ at: p.at, op: 'foreign_read', domain: 'alice', gfn, offset: readOffset, len: readLen }] },
    domains: [
      { name: 'alice', memoryKiB: p.pages * 4, guest: { ops: [{ canary }, { repeat: { times: 80, ops: ['yield'] } }] } },
      ...(p.bystander ? [{ name: 'bob', memoryKiB: 16, guest: { ops: [{ repeat: { times: 20, ops: [{ read: { gpa: 0, len: 64 } }, 'yield'] } }] } }] : []),
    ],
  };
  const text = yaml.dump(doc, { lineWidth: -1 });
  return { text, config: parseScenario(text, 'leak.yaml'), gfn };
});

test('vanilla: dom0 foreign-reading a planted canary violates canary-confined and dom0-no-plaintext', () => {
  fc.assert(fc.property(canaryLeak, ({ text, config, gfn }) => {
    const { events } = run(config);
    const read = events.findIndex((e) => e.kind === 'dom0.foreign_read');
    assert.ok(read > 0, `dom0 never read the frame:\n${text}`);
    const planted = events.findIndex((e) => e.kind === 'guest.canary');
    assert.ok(planted >= 0 && planted < read, 'the canary is planted before dom0 reads');
    const found = violations(events);
    const confined = found.find((v) => v.invariant === 'canary-confined' && v.dom === 0);
    const plaintext = found.find((v) => v.invariant === 'dom0-no-plaintext' && v.dom === 1);
    assert.ok(confined !== undefined, `no canary-confined violation for dom0:\n${describeViolations(events)}\n${text}`);
    assert.ok(plaintext !== undefined, `no dom0-no-plaintext violation:\n${describeViolations(events)}\n${text}`);
    const mfn = (events[read] as EventOf<'dom0.foreign_read'>).mfn;
    assert.equal(confined.mfn, mfn);
    assert.equal(plaintext.mfn, mfn);
    assert.equal((events[read] as EventOf<'dom0.foreign_read'>).gfn, gfn);
  }), { numRuns: runs(200) });
});

test('secure: the same leak attempt shows dom0 only ciphertext (no violation)', () => {
  fc.assert(fc.property(canaryLeak, ({ text }) => {
    const config = parseScenario(text.replace('profile: vanilla', 'profile: secure'), 'leak.yaml');
    assert.equal(config.profile, 'secure');
    const { events } = run(config);
    assert.ok(events.some((e) => e.kind === 'dom0.foreign_read'));
    assert.equal(violations(events).length, 0, describeViolations(events));
  }), { numRuns: runs(100) });
});

/*
 * BUG (src/core/machine/guests/scripted.ts, plantCanary; reported by src/core/machine/invariants/canary-confined.ts):
 * a canary the machine draws itself is `CANARY-` plus only len-7 hex digits, so at the
 * minimum len 8 two tenants get the same secret once in 16 seeds. A tenant then reading its
 * OWN canary matches the other tenant's secret, and canary-confined reports a violation in
 * the secure profile although no isolation boundary was crossed (the checker matches by
 * content, not by where the bytes came from).
 */
test('secure: tenants planting machine-drawn canaries of the minimum length never trip canary-confined', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1_000_000 }), (seed) => {
    const tenant = (name: string) => ({ name, memoryKiB: 16, guest: { ops: [{ canary: { gpa: 0x1000, len: 8 } }, { read: { gpa: 0x1000, len: 8 } }] } });
    const text = yaml.dump({ seed, machine: { memoryMiB: 2, pcpus: 1, profile: 'secure' }, dom0: { memoryKiB: 16 }, domains: [tenant('alice'), tenant('bob')] });
    const { events } = run(parseScenario(text, 'short-canaries.yaml'));
    assert.equal(violations(events).length, 0, `seed ${seed}:\n${describeViolations(events)}`);
  }), { numRuns: runs(200) });
});
