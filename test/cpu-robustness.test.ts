// Property tests of the interpreter's contract on arbitrary input: random bytes as code at
// random EIPs, random register files, random page permissions, random controls and a random
// IDT. step() and deliverEvent() must never throw (only return outcomes), must leave the CPU
// untouched whenever they do not complete, and must keep every register a uint32 and EFLAGS
// within the modelled bits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';

import { applyCpuDelta, cpuDelta, deliverEvent, resetCpu, step } from '../src/core/hardware/cpu/index.ts';
import type { CpuState, ExitControls } from '../src/core/hardware/cpu/index.ts';
import { TestBus } from './fixtures/cpu/harness.ts';
import type { PageAccess } from './fixtures/cpu/harness.ts';

fc.configureGlobal({ includeErrorInReport: true });

const STEPS_PER_RUN = 24;
const KNOWN_EFLAGS = 0x0fd7; // CF 1 PF AF ZF SF TF IF DF OF

const uint32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 0xfff, 0x1000, 0xffffffff, 0x7ffffffc, 0xfffffffc));

const cpuArbitrary: fc.Arbitrary<CpuState> = fc.record({
  gpr: fc.array(uint32, { minLength: 8, maxLength: 8 }),
  eip: uint32,
  eflags: fc.integer({ min: 0, max: KNOWN_EFLAGS }).map((flags) => ((flags & KNOWN_EFLAGS) | 2) >>> 0),
  cr0: fc.constantFrom(0x11, 0x80000011, 0x80010033),
  cr2: uint32,
  cr3: uint32,
  cr4: fc.constantFrom(0, 0x10, 0x90),
  idtrBase: uint32,
  idtrLimit: fc.integer({ min: 0, max: 0xffff }),
  interruptibility: fc.constant(0),
});

const controlsArbitrary: fc.Arbitrary<ExitControls> = fc.record({
  cpuid: fc.boolean(), hlt: fc.boolean(), io: fc.boolean(), rdmsr: fc.boolean(), wrmsr: fc.boolean(), rdtsc: fc.boolean(),
  cr3Load: fc.boolean(), cr3Store: fc.boolean(), invlpg: fc.boolean(), pause: fc.boolean(), vmcall: fc.boolean(),
  cr0Mask: uint32, cr4Mask: uint32,
});

interface World {
  readonly cpu: CpuState;
  readonly code: Uint8Array;
  readonly pages: readonly (readonly [number, PageAccess])[];
  readonly controls: ExitControls;
  readonly idtBytes: Uint8Array;
}

const worldArbitrary: fc.Arbitrary<World> = fc.record({
  cpu: cpuArbitrary,
  code: fc.uint8Array({ minLength: 1, maxLength: 48 }),
  // Page permissions around EIP, ESP and the IDT, by offset in pages.
  pages: fc.array(fc.tuple(fc.integer({ min: -1, max: 1 }), fc.constantFrom<PageAccess>('read-only', 'not-present', 'ept-violation')), { maxLength: 3 }),
  controls: controlsArbitrary,
  idtBytes: fc.uint8Array({ minLength: 0, maxLength: 256 }),
});

function assertWellFormed(cpu: CpuState): void {
  for (const value of [...cpu.gpr, cpu.eip, cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4, cpu.idtrBase]) {
    assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, `register value ${value} is not a uint32`);
  }
  assert.equal(cpu.gpr.length, 8);
  assert.equal(cpu.eflags & 2, 2, 'EFLAGS bit 1');
  assert.equal(cpu.eflags & ~KNOWN_EFLAGS, 0, `EFLAGS ${cpu.eflags.toString(16)} has bits outside the model`);
  assert.ok(cpu.idtrLimit >= 0 && cpu.idtrLimit <= 0xffff);
}

function buildBus(world: World): TestBus {
  const bus = new TestBus();
  bus.load(world.cpu.eip, world.code);
  // Plant some gates too: an IDT of random bytes is mostly invalid, so give it a few real ones.
  bus.load(world.cpu.idtrBase, world.idtBytes);
  for (const [offset, access] of world.pages) {
    const anchor = offset === 0 ? world.cpu.gpr[4] - 4 : world.cpu.eip + offset * 4096;
    bus.setAccess(anchor >>> 0, access);
  }
  return bus;
}

/** Runs up to STEPS_PER_RUN steps, delivering exceptions, checking the contract at every step. */
function exercise(world: World): void {
  const bus = buildBus(world);
  const cpu = structuredClone(world.cpu);
  for (let index = 0; index < STEPS_PER_RUN; index += 1) {
    const before = structuredClone(cpu);
    const outcome = step(cpu, bus, world.controls, index);
    assertWellFormed(cpu);
    if (outcome.kind === 'retired') {
      bus.commit();
      if (outcome.halted === true) return;
      continue;
    }
    bus.discard();
    assert.deepEqual(cpu, before, `a ${outcome.kind} outcome changed the CPU`);
    if (outcome.kind === 'exit') {
      assert.ok(outcome.length >= 0 && outcome.length <= 15);
      return;
    }
    assert.ok(outcome.vector >= 0 && outcome.vector <= 255);
    const delivery = deliverEvent(cpu, bus, outcome.vector, outcome.errorCode, outcome.software === true, {
      ...(outcome.cr2 === undefined ? {} : { cr2: outcome.cr2 }),
      ...(outcome.length === undefined ? {} : { instructionLength: outcome.length }),
    });
    assertWellFormed(cpu);
    if (delivery === 'triple-fault' || typeof delivery === 'object') {
      bus.discard();
      assert.deepEqual(cpu, before, 'an undelivered event changed the CPU');
      return;
    }
    bus.commit();
  }
}

test('random bytes at random EIPs: step and deliverEvent only ever return outcomes', () => {
  fc.assert(fc.property(worldArbitrary, exercise), { numRuns: Number(process.env.CPU_ROBUSTNESS_RUNS ?? 400) });
});

test('random bytes after a valid IDT with present gates: delivery runs the handlers', () => {
  const withGates = worldArbitrary.map((world) => {
    // 32 interrupt gates at the IDT base, all pointing at the code itself.
    const idt = new Uint8Array(32 * 8);
    const view = new DataView(idt.buffer);
    for (let vector = 0; vector < 32; vector += 1) {
      view.setUint32(vector * 8, ((0x08 << 16) | (world.cpu.eip & 0xffff)) >>> 0, true);
      view.setUint32(vector * 8 + 4, ((world.cpu.eip & 0xffff0000) | 0x8e00) >>> 0, true);
    }
    return { ...world, idtBytes: idt, cpu: { ...world.cpu, idtrLimit: 32 * 8 - 1 } };
  });
  fc.assert(fc.property(withGates, exercise), { numRuns: Number(process.env.CPU_ROBUSTNESS_RUNS ?? 400) / 2 });
});

test('cpuDelta and applyCpuDelta round-trip between any two states', () => {
  fc.assert(fc.property(cpuArbitrary, cpuArbitrary, (before, after) => {
    const delta = cpuDelta(before, after);
    const rebuilt = structuredClone(before);
    applyCpuDelta(rebuilt, delta);
    assert.deepEqual(cpuDelta(rebuilt, after), []);
    assert.deepEqual(rebuilt.gpr, [...after.gpr]);
    assert.deepEqual(cpuDelta(after, after), []);
    for (let i = 0; i < delta.length; i += 2) assert.ok(delta[i] < 16 && (i === 0 || delta[i] > delta[i - 2]), 'indices ascend');
  }), { numRuns: 300 });
});

test('resetCpu: protected mode, paging off, EFLAGS 2, IDTR at its reset value', () => {
  assert.deepEqual(resetCpu(0x100000, 0x90000), {
    gpr: [0, 0, 0, 0, 0x90000, 0, 0, 0], eip: 0x100000, eflags: 2, cr0: 0x11, cr2: 0, cr3: 0, cr4: 0, idtrBase: 0, idtrLimit: 0xffff, interruptibility: 0,
  });
  assert.deepEqual(cpuDelta(resetCpu(0, 0), { ...resetCpu(0, 0), eip: 5, cr3: 0x1000 }), [8, 5, 12, 0x1000]);
});
