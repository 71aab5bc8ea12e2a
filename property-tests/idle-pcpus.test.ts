/**
 * Idle pCPUs are skipped in virtual time: a pCPU with nothing to run sleeps (one sched.idle
 * with 0 ticks) and the turns skip it until a vCPU it could run is runnable.
 * - against an outside reference, the same machine with one pCPU: a single-vCPU guest sees
 *   exactly the same operations at exactly the same ticks on 1, 2 or 3 pCPUs, and the extra
 *   pCPUs cost a handful of steps, not one per round;
 * - at every step boundary of any scenario: a sleeping pCPU holds no vCPU and takes no
 *   turn, sleeps once per stay, and is woken at the next step when a vCPU waits for a pCPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NO_DOMAIN, type Event } from '../src/events/schema.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { isRunnable } from '../src/core/hypervisor/scheduler.ts';
import { cloneState, initialState, type MachineState } from '../src/core/machine/state.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { nextStep } from '../src/replay/recorder.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { scenarioArbitrary } from './arbitraries.ts';
import { runs } from './helpers.ts';

const MAX_STEPS = 200_000;

/** Runs to halt, handing each step with the state before it (a clone) and after it. */
function eachStep(config: MachineConfig, each: (step: Event[], before: MachineState, after: MachineState) => void): void {
  const machine = new Machine(initialState(config));
  for (let count = 0; !machine.state.halted; count++) {
    assert.ok(count <= MAX_STEPS, 'the machine did not halt');
    const before = cloneState(machine.state);
    each(nextStep(machine), before, machine.state);
  }
}

/** What a guest sees on `pcpus` pCPUs (its operations and their ticks), the final tick and the steps taken. */
function guestView(config: MachineConfig, pcpus: number): { ops: string[]; ticks: number; steps: number } {
  const machine = new Machine(initialState({ ...config, pcpus }));
  const ops: string[] = [];
  let count = 0;
  while (!machine.state.halted) {
    const tick = machine.state.tick;
    for (const e of nextStep(machine)) if (e.kind === 'guest.op') ops.push(`pc ${e.pc} op ${e.op} -> ${e.next} at tick ${tick}`);
    assert.ok(++count <= MAX_STEPS, 'the machine did not halt');
  }
  return { ops, ticks: machine.state.tick, steps: count };
}

const oneVcpu = scenarioArbitrary({ maxOps: 16 }).filter((s) => s.config.domains.length === 1 && s.config.domains[0].vcpus === 1);

test('an extra pCPU with nothing to run changes nothing the guest sees, and costs a few steps, not one per round', () => {
  fc.assert(fc.property(oneVcpu, fc.integer({ min: 2, max: 3 }), (scenario, pcpus) => {
    const one = guestView(scenario.config, 1);
    const more = guestView(scenario.config, pcpus);
    assert.deepEqual(more.ops, one.ops);
    // The clock after the last step: the round a lone pCPU ends at once is still open on more.
    assert.ok(more.ticks === one.ticks || more.ticks === one.ticks - 1, `${more.ticks} ticks on ${pcpus} pCPUs, ${one.ticks} on one`);
    // Each extra pCPU sleeps once per stretch of the guest running (a few, with domain creation and destruction).
    assert.ok(more.steps <= one.steps + 4 * pcpus, `${more.steps} steps on ${pcpus} pCPUs, ${one.steps} on one`);
  }), { numRuns: runs(60) });
});

test('an idle pCPU\'s jump of the clock stops at a scenario input (found by the property above, seed -1558524773)', () => {
  // alice finishes her one op at tick 0; the input at tick 1 gives her another, dom0 acts at 2.
  // On two pCPUs the idle one jumped to tick 2, and the input came a tick late.
  const config = parseScenario(`
seed: ' '
machine: { memoryMiB: 2, pcpus: 1, profile: secure, quantum: 1 }
dom0:
  memoryKiB: 16
  actions: [ { at: 2, op: foreign_read, domain: alice } ]
domains:
  - { name: alice, memoryKiB: 16, vcpus: 1, start: 0, guest: { ops: [ scan ] } }
inputs:
  - { at: 1, set: { domain.alice.ops: '[{"hypercall":{"op":"console_write","text":""}}]' } }
`, 'idle-input.yaml');
  const one = guestView(config, 1);
  assert.deepEqual(one.ops, ['pc 0 op 3 -> 1 at tick 0', 'pc 0 op 4 -> 1 at tick 1']);
  assert.deepEqual(guestView(config, 2).ops, one.ops);
});

test('a sleeping pCPU holds nothing, takes no turn, sleeps once per stay, and wakes at the next step when a vCPU waits', () => {
  fc.assert(fc.property(scenarioArbitrary({ maxOps: 12 }), (scenario) => {
    const config = { ...scenario.config, pcpus: Math.max(2, scenario.config.pcpus) };
    eachStep(config, (step, before, after) => {
      const asleep = (s: MachineState, p: number): boolean => s.sched.pcpus[p].asleep;
      for (const e of step) {
        const pcpu = e.kind === 'guest.op' || e.kind === 'cpu.step' ? e.pcpu : e.kind === 'sched.idle' && e.ticks === 0 ? e.pcpu : -1;
        if (pcpu >= 0) assert.ok(!asleep(before, pcpu), `pCPU ${pcpu} took a turn asleep: ${e.kind}`);
      }
      for (const [p, state] of after.sched.pcpus.entries()) if (state.asleep) assert.equal(state.dom, NO_DOMAIN, `sleeping pCPU ${p} holds a vCPU`);
      assert.ok(after.sched.pcpus.some((p) => !p.asleep), 'every pCPU is asleep');
      // Woken at the next step: a sleeper and a runnable vCPU on no pCPU never outlast a step that could wake it.
      const sleeper = before.sched.pcpus.findIndex((p) => p.asleep);
      const waiting = [...before.domains.values()].some((d) => d.vcpus.some((_, v) => isRunnable(before, d.id, v) && !before.sched.pcpus.some((p) => p.dom === d.id && p.vcpu === v)));
      const decidedBefore = step[0].kind === 'input' || step[0].kind === 'dom0.op' || step[0].kind === 'wire.rx' || step[0].kind === 'machine.halt';
      if (sleeper >= 0 && waiting && !decidedBefore) {
        const first = step[0];
        assert.ok(first.kind === 'sched.switch' && before.sched.pcpus[first.pcpu].asleep, `a vCPU waited while pCPU ${sleeper} slept: ${first.kind}`);
      }
    });
  }), { numRuns: runs(150) });
});

