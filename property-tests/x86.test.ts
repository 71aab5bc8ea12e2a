/**
 * Properties of x86 guests (random bytes and random instruction sequences, written as NASM
 * text) under EPT and shadow paging, in both profiles:
 * 1-2. recording never throws, the secure profile never records a violation, verify
 *      re-executes every run byte for byte, and the guest only ever gets architectural
 *      outcomes (exceptions through its IDT, VM exits with SDM reasons, Xen errnos);
 * 3.   seek equals fold, at random positions and inside VM-exit steps;
 * 4.   EPT and shadow paging show the guest the same instructions, registers and output
 *      (ALU/memory programs; and programs whose own page tables make a delivery fault);
 * 5.   the same scenario recorded twice has the same head hash.
 * Then properties that pin down single facts the events and the hypervisor must get right:
 * exception events describe the delivery that happened, io events carry unsigned values,
 * and the x2APIC timer follows the guest ABI (mask, period, wakeup from HLT).
 *
 * Each check runs over a fold of the recorded events with `evolve` on a plain state, so it
 * sees the machine state just before every event (what the guest's IDT, memory and
 * registers were), as a debugger attached to the recording would.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { STEP_OPENERS, type Event, type EventOf } from '../src/events/schema.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { readGuestLinear } from '../src/core/hypervisor/memory/copy-from-guest.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { initialState, type MachineState } from '../src/core/machine/state.ts';
import type { X86Vcpu } from '../src/core/hypervisor/state.ts';
import { applyCpuDelta, resetCpu } from '../src/core/hardware/cpu/cpu-state.ts';
import type { GuestImage } from '../src/core/hypervisor/config.ts';
import { ExitReason, Vector } from '../src/core/hardware/cpu/outcomes.ts';
import { lapicVector } from '../src/core/hardware/vmx/lapic.ts';
import { decode } from '../src/core/hardware/x86/index.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { verifyRun, type VerifyReport } from '../src/replay/verify.ts';
import type { RecordingStore, RunRow } from '../src/events/store.ts';
import { TempDir, foldDigests, record, runs } from './helpers.ts';
import {
  addressSpaceScenario, TIMER_VECTOR, buildScenario, faultScenario, instructionAsm, instructionScenario, ioScenario, pagingDeliveryScenario, randomBytesScenario, timerScenario, withPaging, type InstructionProgram, type X86Scenario,
} from './x86-arbitraries.ts';

const dir = new TempDir();
after(() => dir.cleanup());

const MAX_EVENTS = 12_000;

const describeReport = (report: VerifyReport): string =>
  report.ok ? 'ok' : `${report.mismatch?.check} at seq ${report.mismatch?.seq}: ${report.mismatch?.message}\n  expected ${show(report.mismatch?.expected)}\n  actual   ${show(report.mismatch?.actual)}`;

function show(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v)) ?? 'undefined';
}

// ---- what the guest may see ---------------------------------------------------------------

/** Exit reasons chronovisor's Xen can take (SDM Vol. 3, Appendix C), by paging method. */
const EXIT_REASONS: Record<'ept' | 'shadow', ReadonlySet<number>> = {
  ept: new Set([
    ExitReason.EXTERNAL_INTERRUPT, ExitReason.TRIPLE_FAULT, ExitReason.INTERRUPT_WINDOW, ExitReason.CPUID, ExitReason.HLT,
    ExitReason.VMCALL, ExitReason.CR_ACCESS, ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ, ExitReason.MSR_WRITE,
    ExitReason.EPT_VIOLATION,
  ]),
  shadow: new Set([
    ExitReason.EXCEPTION_NMI, ExitReason.EXTERNAL_INTERRUPT, ExitReason.TRIPLE_FAULT, ExitReason.INTERRUPT_WINDOW,
    ExitReason.CPUID, ExitReason.HLT, ExitReason.INVLPG, ExitReason.VMCALL, ExitReason.CR_ACCESS,
    ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ, ExitReason.MSR_WRITE,
  ]),
};
/** Exits caused by executing an instruction: they carry its length. */
const INSTRUCTION_EXITS: ReadonlySet<number> = new Set([
  ExitReason.CPUID, ExitReason.HLT, ExitReason.INVLPG, ExitReason.VMCALL, ExitReason.CR_ACCESS,
  ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ, ExitReason.MSR_WRITE,
]);
/** Hardware exceptions the modelled CPU raises (software INT n may name any vector). */
const HARDWARE_VECTORS: ReadonlySet<number> = new Set([Vector.DE, Vector.UD, Vector.DF, Vector.TS, Vector.NP, Vector.SS, Vector.GP, Vector.PF]);
/** Vectors that push an error code (SDM Vol. 3, Table 6-1) among those. */
const WITH_ERROR_CODE: ReadonlySet<number> = new Set([Vector.DF, Vector.TS, Vector.NP, Vector.SS, Vector.GP, Vector.PF]);
/** What a hypercall may return when it fails: ENOSYS, EINVAL, ENOMEM, EEXIST, EFAULT, ESRCH. */
const ERRNOS: ReadonlySet<number> = new Set([-38, -22, -12, -17, -14, -3]);
/** How a guest may die: of its own faults, never of an unhandled exit or an EPT misconfiguration. */
const CRASHES: ReadonlySet<string> = new Set(['crashed: triple fault', 'crashed: fault while delivering an event']);

/** Which groups of checks a property makes (base: always). */
type CheckGroup = 'fidelity' | 'io' | 'timer-mask' | 'timer-period' | 'wake';

interface Expectations {
  profile: 'secure' | 'vanilla';
  paging: 'ept' | 'shadow';
  /** The program loads an IDT of its own (otherwise IDTR is the reset value: base 0, all zeros). */
  ownIdt: boolean;
  groups?: ReadonlySet<CheckGroup>;
}

/** The software interrupt at EIP (INT n / INT3), if that is what the vCPU is about to run. */
function softwareVector(state: MachineState, dom: number, x86: X86Vcpu): number | undefined {
  // As fetched: the TLB may still hold a translation the guest changed without INVLPG.
  const bytes = readGuestLinear(state, dom, 0, x86.cpu.eip, 15, true);
  if (bytes === undefined) return undefined;
  const decoded = decode(bytes, 0);
  if (decoded.kind !== 'instruction') return undefined;
  if (decoded.mnemonic === 'int3') return Vector.BP;
  if (decoded.mnemonic === 'int' && decoded.operands[0]?.kind === 'imm') return decoded.operands[0].value;
  return undefined;
}

/** The handler address of `vector`'s gate in the guest's IDT, if the gate is there to read. */
function gateOffset(state: MachineState, dom: number, x86: X86Vcpu, vector: number): number | undefined {
  if (vector * 8 + 7 > x86.cpu.idtrLimit) return undefined;
  const gate = readGuestLinear(state, dom, 0, (x86.cpu.idtrBase + vector * 8) >>> 0, 8);
  if (gate === undefined || gate.length < 8) return undefined;
  const view = Buffer.from(gate);
  return ((view.readUInt16LE(6) << 16) | view.readUInt16LE(0)) >>> 0;
}

/** A dword of guest memory at a linear address, if mapped. */
function guestDword(state: MachineState, dom: number, linear: number): number | undefined {
  const bytes = readGuestLinear(state, dom, 0, linear >>> 0, 4);
  return bytes === undefined || bytes.length < 4 ? undefined : Buffer.from(bytes).readUInt32LE(0);
}

const REG = { ESP: 4, EIP: 8, EFLAGS: 9, CR2: 11 } as const;
const EFLAGS_IF = 1 << 9;
const CR0_PG = 0x8000_0000;
const MSR = { LVT: 0x832, INITIAL: 0x838 } as const;
const LVT_MASKED = 1 << 16;
const LVT_PERIODIC = 1 << 17;

/** The value the delta gives register `index`, if it changes it. */
function deltaValue(delta: readonly number[], index: number): number | undefined {
  for (let i = 0; i < delta.length; i += 2) if (delta[i] === index) return delta[i + 1];
  return undefined;
}

interface RunFacts {
  events: Event[];
  guest: number;
}

/** An IDT delivery recorded by an event, checked once the step's stores are in memory. */
interface PendingFrame {
  seq: number;
  what: string;
  /** The error code the event says was pushed (-1: none). */
  errorCode: number;
  esp: number;
  pushed: number;
}

/**
 * Folds the run's events over a plain state, checking each guest-visible fact against the
 * state just before it (and, for an exception frame, the memory just after its step).
 */
function checkRun(store: RecordingStore, row: RunRow, x: Expectations): RunFacts {
  const groups = x.groups ?? new Set<CheckGroup>();
  const timeline = new Timeline(store, row);
  const events = [...timeline.iterate()].map(([, e]) => e);
  const state = initialState(timeline.stateAt(0).config);
  let guest = -1;
  /** The IDT the reset IDTR names (gpa 0-0x7ff) was written, or IDTR changed. */
  let idtTouched = false;
  /** The timer as the guest programmed it (x2APIC MSR writes that reached the hypervisor). */
  /**
   * `raised`: how the pending timer interrupt came to be, if one is pending: the count ran
   * out while the LVT the guest wrote was unmasked (or not). Masking the LVT afterwards does
   * not take back a request already made, as on hardware.
   */
  const lapic = { lvt: LVT_MASKED, lvtWritten: false, count: 0, raised: { unmasked: false, lvt: LVT_MASKED, count: 0 } };
  let frame: PendingFrame | undefined;
  /** The guest read the LVT (RDMSR 0x832): the handler's result is in the next vmcs.write. */
  let lvtRead = false;
  const where = (seq: number, e: Event): string => `at seq ${seq} (${show(e)})`;
  const checkFrame = (): void => {
    if (frame === undefined) return;
    const f = frame;
    frame = undefined;
    // EFLAGS, CS, EIP (12 bytes) and maybe an error code (16): anything else is not a plain frame.
    const bytes = (f.esp - f.pushed) >>> 0;
    if (bytes !== 12 && bytes !== 16) return;
    const pushedCode = bytes === 16 ? guestDword(state, guest, f.pushed) : -1;
    if (pushedCode === undefined) return;
    assert.equal(f.errorCode, pushedCode, `${f.what}: the handler received error code ${pushedCode === -1 ? 'none' : `0x${pushedCode.toString(16)}`}, the event says ${f.errorCode}`);
  };
  events.forEach((e, seq) => {
    if (STEP_OPENERS.has(e.kind)) checkFrame();
    const x86 = guest >= 0 ? state.domains.get(guest)?.vcpus[0]?.x86 ?? undefined : undefined;
    if (e.kind === 'violation') assert.ok(x.profile !== 'secure', `a violation in the secure profile ${where(seq, e)}`);
    if (e.kind === 'domain.create' && e.name === 'guest') guest = e.dom;
    if (e.kind === 'machine.halt' && groups.has('wake')) {
      const v = state.domains.get(guest)?.status === 'running' ? state.domains.get(guest)!.vcpus[0].x86! : undefined;
      const armed = (lapic.lvt & LVT_MASKED) === 0 && lapic.count > 0 && v !== undefined && (v.lapic.deadline >= 0 || v.lapic.pending);
      assert.ok(!(v?.halted && (v.cpu.eflags & EFLAGS_IF) !== 0 && armed),
        `lost wakeup: the machine halted ('${e.reason}') while the guest waits in HLT with IF=1 and an unmasked timer armed (deadline ${v?.lapic.deadline}, pending ${v?.lapic.pending}, interruptibility ${v?.cpu.interruptibility}) ${where(seq, e)}`);
    }
    const mine = 'dom' in e && e.dom === guest && guest >= 0;
    if (!mine || x86 === undefined) {
      evolve(state, e);
      return;
    }
    switch (e.kind) {
      case 'cpu.step':
        assert.ok(x86.inGuest, `cpu.step outside the guest ${where(seq, e)}`);
        assert.equal(e.eip, x86.cpu.eip, `cpu.step at an EIP the vCPU is not at ${where(seq, e)}`);
        break;
      case 'exception': {
        assert.ok(x86.inGuest, `exception outside the guest ${where(seq, e)}`);
        const software = softwareVector(state, guest, x86);
        assert.ok(HARDWARE_VECTORS.has(e.vector) || e.vector === software,
          `exception vector ${e.vector} is neither a CPU exception nor the INT n at EIP 0x${x86.cpu.eip.toString(16)} ${where(seq, e)}`);
        if (!x.ownIdt) assert.ok(idtTouched, `an exception delivered through the reset IDT (all zeros) ${where(seq, e)}`);
        if (groups.has('fidelity')) {
          const handler = gateOffset(state, guest, x86, e.vector);
          const entered = deltaValue(e.delta, REG.EIP) ?? x86.cpu.eip;
          if (handler !== undefined) {
            assert.equal(entered, handler, `the event says vector ${e.vector}, whose gate points at 0x${handler.toString(16)}, but the guest entered 0x${entered.toString(16)} ${where(seq, e)}`);
          }
          const cr2 = deltaValue(e.delta, REG.CR2);
          if (cr2 !== undefined) assert.equal(e.cr2, cr2, `delivery loaded CR2 = 0x${cr2.toString(16)}, the event says cr2 ${e.cr2} ${where(seq, e)}`);
          if (e.vector !== software && e.vector !== Vector.PF && e.vector !== Vector.DF) assert.equal(e.cr2, -1, `cr2 on vector ${e.vector} ${where(seq, e)}`);
          if (e.vector !== software) {
            assert.equal(e.errorCode >= 0, WITH_ERROR_CODE.has(e.vector), `vector ${e.vector} with error code ${e.errorCode} ${where(seq, e)}`);
          }
          const esp = deltaValue(e.delta, REG.ESP);
          if (esp !== undefined) frame = { seq, what: `exception ${where(seq, e)}`, errorCode: e.errorCode, esp: x86.cpu.gpr[REG.ESP], pushed: esp };
        }
        break;
      }
      case 'vm.exit': {
        assert.ok(EXIT_REASONS[x.paging].has(e.reason), `exit reason ${e.reason} under ${x.paging} ${where(seq, e)}`);
        if (INSTRUCTION_EXITS.has(e.reason)) assert.ok(e.length >= 1 && e.length <= 15, `instruction exit of length ${e.length} ${where(seq, e)}`);
        if (e.reason === ExitReason.EXCEPTION_NMI) assert.equal(e.vector, Vector.PF, `only #PF is intercepted ${where(seq, e)}`);
        else assert.equal(e.vector, -1, `interruption information on exit ${e.reason} ${where(seq, e)}`);
        if (e.reason === ExitReason.TRIPLE_FAULT) {
          // The rest of the step: the domain is destroyed as crashed.
          let end = seq + 1;
          while (end < events.length && !STEP_OPENERS.has(events[end].kind)) end++;
          const destroy = events.slice(seq + 1, end).find((d): d is EventOf<'domain.destroy'> => d.kind === 'domain.destroy' && d.dom === guest);
          assert.equal(destroy?.reason, 'crashed: triple fault', `a triple fault that does not crash the domain ${where(seq, e)}`);
        }
        if (e.reason === ExitReason.MSR_READ && x86.cpu.gpr[1] === MSR.LVT) lvtRead = true;
        if (e.reason === ExitReason.MSR_WRITE) {
          const [eax, ecx] = [x86.cpu.gpr[0], x86.cpu.gpr[1]];
          if (ecx === MSR.LVT) {
            lapic.lvt = eax;
            lapic.lvtWritten = true;
          } else if (ecx === MSR.INITIAL) {
            lapic.count = eax;
          }
        }
        break;
      }
      case 'vm.entry':
        if (e.inject >= 0) {
          const allowed: number[] = [Vector.DF, Vector.GP, Vector.PF, lapicVector(x86.lapic)];
          assert.ok(allowed.includes(e.inject), `vm.entry injects vector ${e.inject} (timer vector ${lapicVector(x86.lapic)}) ${where(seq, e)}`);
          if (!x.ownIdt) assert.ok(idtTouched, `an event delivered through the reset IDT (all zeros) ${where(seq, e)}`);
          const timer = x86.injection === null;
          if (timer && groups.has('timer-mask')) {
            // A pending request is delivered as made; otherwise the count runs out at this entry.
            const r = x86.lapic.pending ? lapic.raised : { unmasked: (lapic.lvt & LVT_MASKED) === 0, lvt: lapic.lvt, count: lapic.count };
            assert.ok(r.unmasked, `timer interrupt ${e.inject} delivered, but the LVT was masked (0x${r.lvt.toString(16)}${lapic.lvtWritten ? '' : ', its reset value: never written'}) when its count (${r.count}) ran out ${where(seq, e)}`);
          }
          if (groups.has('fidelity')) {
            const handler = gateOffset(state, guest, x86, e.inject);
            const entered = deltaValue(e.delta, REG.EIP) ?? x86.cpu.eip;
            if (handler !== undefined) {
              assert.equal(entered, handler, `vm.entry says it injected vector ${e.inject}, whose gate points at 0x${handler.toString(16)}, but the guest entered 0x${entered.toString(16)} ${where(seq, e)}`);
            }
            const esp = deltaValue(e.delta, REG.ESP);
            if (esp !== undefined) frame = { seq, what: `vm.entry ${where(seq, e)}`, errorCode: e.errorCode, esp: x86.cpu.gpr[REG.ESP], pushed: esp };
          }
        }
        break;
      case 'hypercall': {
        const ok = ERRNOS.has(e.result) || (e.result >= 0 && Number.isSafeInteger(e.result));
        assert.ok(ok, `hypercall result ${e.result} is neither a count nor a Xen errno ${where(seq, e)}`);
        if (e.op === 'populate_physmap' && e.result >= 0) assert.equal(e.result, e.args[1], `populate_physmap returns its count ${where(seq, e)}`);
        if (e.op === 'decrease_reservation') assert.ok(e.result <= 4096, `decrease_reservation released ${e.result} ${where(seq, e)}`);
        if (e.op === 'console_write' && e.result >= 0) assert.equal(e.result, e.text.length, `console_write returns the length written ${where(seq, e)}`);
        if (e.op.startsWith('hypercall_')) assert.equal(e.result, -38, `an unknown hypercall is ENOSYS ${where(seq, e)}`);
        break;
      }
      case 'io':
        assert.ok([1, 2, 4].includes(e.size) && e.port >= 0 && e.port <= 0xffff, `io ${where(seq, e)}`);
        if (groups.has('io')) {
          const eax = x86.cpu.gpr[0];
          const expected = e.out ? (e.size === 4 ? eax : eax % 2 ** (8 * e.size)) : 2 ** (8 * e.size) - 1;
          assert.equal(e.value, expected, `${e.out ? 'OUT' : 'IN'} of ${e.size} bytes (EAX 0x${eax.toString(16)}): the io event's value is not the unsigned value on the port ${where(seq, e)}`);
        }
        break;
      case 'lapic.timer':
        // The count ran out: the interrupt is requested now, under the LVT the guest wrote.
        if (e.pending && !x86.lapic.pending) lapic.raised = { unmasked: (lapic.lvt & LVT_MASKED) === 0, lvt: lapic.lvt, count: lapic.count };
        if (groups.has('timer-period')) {
          const armed = e.deadline >= 0 && lapic.count > 0;
          const periodic = (lapic.lvt & LVT_PERIODIC) !== 0;
          if (armed) {
            // The period of a periodic timer is its initial count; the model keeps both registers.
            assert.equal(e.lvt, lapic.lvt, `the model's LVT is 0x${e.lvt.toString(16)}, the guest wrote 0x${lapic.lvt.toString(16)} ${where(seq, e)}`);
            assert.equal(e.initialCount, lapic.count,
              `the guest programmed a ${periodic ? 'periodic' : 'one-shot'} timer (LVT 0x${lapic.lvt.toString(16)}, initial count ${lapic.count}), the model's count is ${e.initialCount} ${where(seq, e)}`);
          }
        }
        break;
      case 'mem.write':
        if (e.gpa >= 0 && e.gpa < 0x800) idtTouched = true;
        break;
      case 'vmcs.write':
        if (lvtRead && groups.has('timer-mask')) {
          const eax = deltaValue(e.delta, 0) ?? x86.cpu.gpr[0];
          assert.equal(eax & LVT_MASKED, lapic.lvt & LVT_MASKED, `RDMSR of the LVT returned 0x${eax.toString(16)}, but the LVT is 0x${lapic.lvt.toString(16)}${lapic.lvtWritten ? '' : ' (its reset value)'}: the mask bit does not read back ${where(seq, e)}`);
        }
        lvtRead = false;
        // #GP (memory it does not have, bad MSRs), the guest's own #PF (shadow paging), or #DF
        // when that #PF met the delivery of a #PF or contributory fault (the SDM's rules).
        if (e.inject >= 0) assert.ok(([Vector.GP, Vector.PF, Vector.DF] as number[]).includes(e.inject), `the hypervisor injects vector ${e.inject} ${where(seq, e)}`);
        break;
      case 'domain.destroy':
        assert.ok(e.reason === 'shutdown' || CRASHES.has(e.reason), `the guest ended as '${e.reason}': the simulator, not the guest, failed ${where(seq, e)}`);
        // With no IDT (and paging off, so the reset IDT at gpa 0 is readable) a fault is a
        // triple fault. With paging on, the IDT may be unreachable; see the EPT/shadow property.
        if (!x.ownIdt && !idtTouched && e.reason !== 'shutdown' && (x86.cpu.cr0 & CR0_PG) === 0) {
          assert.equal(e.reason, 'crashed: triple fault', `with no IDT a fault is a triple fault ${where(seq, e)}`);
        }
        break;
      default:
        break;
    }
    evolve(state, e);
    const after = state.domains.get(guest)?.vcpus[0]?.x86;
    if (after && (after.cpu.idtrBase !== 0 || after.cpu.idtrLimit !== 0xffff)) idtTouched = true;
  });
  checkFrame();
  return { events, guest };
}

/** Records a scenario, checks what the guest saw, and verifies the run by re-execution. */
function recordAndCheck(scenario: X86Scenario, groups: CheckGroup[] = [], verify = true): RunFacts {
  const store = dir.store();
  try {
    const { row } = record(store, scenario.text, { maxEvents: MAX_EVENTS }, scenario.config);
    assert.ok(row.status === 'complete' || row.status === 'stopped', `run status ${row.status}`);
    const facts = checkRun(store, row, {
      profile: scenario.draft.profile, paging: scenario.draft.paging, ownIdt: scenario.draft.asm.includes('lidt [idt_desc]'), groups: new Set(groups),
    });
    if (verify) {
      const report = verifyRun(store, row);
      assert.ok(report.ok, describeReport(report));
      assert.equal(report.replayedEvents, row.eventCount);
    }
    return facts;
  } finally {
    store.close();
  }
}

// ---- 1. random bytes ------------------------------------------------------------------------

test('random bytes as guest code: recording never throws, no violation (secure), architectural outcomes only, verify passes', () => {
  fc.assert(fc.property(randomBytesScenario(), (scenario) => {
    recordAndCheck(scenario);
  }), { numRuns: runs(100) });
});

// ---- 2. random instruction sequences ---------------------------------------------------------

test('random instruction sequences: the simulator never fails, the guest gets SDM exits, IDT deliveries and Xen errnos, verify passes', () => {
  fc.assert(fc.property(instructionScenario(), (scenario) => {
    recordAndCheck(scenario);
  }), { numRuns: runs(150) });
});

// ---- 3. seek equals fold -----------------------------------------------------------------------

test('seek equals fold on x86 recordings, at random positions and inside VM-exit steps', () => {
  const fraction = fc.double({ min: 0, max: 1, noNaN: true });
  fc.assert(fc.property(instructionScenario({ maxChunks: 8 }), fc.array(fraction, { minLength: 1, maxLength: 12 }), fc.array(fraction, { minLength: 1, maxLength: 6 }), fc.nat(3), (scenario, fractions, exitPicks, inside) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { maxEvents: MAX_EVENTS, checkpointEvery: 500 }, scenario.config);
    const timeline = new Timeline(store, row);
    const exits: number[] = [];
    for (const [seq, e] of timeline.iterate()) if (e.kind === 'vm.exit') exits.push(seq);
    const seqs = [0, row.eventCount, ...fractions.map((f) => Math.round(f * row.eventCount))];
    // Positions just after a VM exit: inside the step, between the exit and its handler's effects.
    for (const f of exits.length > 0 ? exitPicks : []) seqs.push(Math.min(row.eventCount, exits[Math.floor(f * (exits.length - 1))] + 1 + inside));
    const expected = foldDigests(store, row, seqs);
    for (const seq of seqs) {
      const fresh = stateDigest(new Timeline(store, row).stateAt(seq)).toString('hex');
      assert.equal(fresh, expected.get(seq), `a fresh seek to ${seq} of ${row.eventCount} differs from the fold`);
      assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), expected.get(seq), `seek ${seq} on a shared timeline differs from the fold`);
    }
    store.close();
  }), { numRuns: runs(40) });
});

// ---- regressions: counterexamples of earlier runs of the properties above ----------------------

/** The IDT of the generated programs: every gate to its stub, the handler resuming at RECOVER. */
const RECOVERING_IDT = { limit: 0x7ff, damage: [] as [number, number][], gateType: 0x8e00, mode: { kind: 'recover' as const } };

/** A counterexample of an earlier run, rebuilt from its parts. */
function regression(seed: number, memoryKiB: number, program: Omit<InstructionProgram, 'ending'>): X86Scenario {
  return buildScenario({ seed, profile: 'secure', paging: 'ept', memoryKiB, timeslice: 1000, victim: false, asm: instructionAsm({ ...program, ending: 'shutdown' }, memoryKiB) });
}

const lvt = (value: number): string[] => ['mov ecx, 0x832', `mov eax, 0x${value.toString(16)}`, 'xor edx, edx', 'wrmsr'];
const initialCount = (count: number): string[] => ['mov ecx, 0x838', `mov eax, ${count}`, 'xor edx, edx', 'wrmsr'];

test('regression: an INT3 fetched through a TLB entry the guest made stale is the INT n the checks decode', () => {
  // The guest maps its code page elsewhere without INVLPG, then runs INT3 from the stale TLB entry.
  recordAndCheck(regression(301084, 128, {
    idt: { ...RECOVERING_IDT, timerVector: 0x20 },
    pagingSetup: { mapped: 32, pteFlags: 3, wp: false },
    chunks: [['mov dword [PT + 4], 0x20003', 'movsx eax, al'], ['int3'], ['inc eax']],
  }));
});

test('regression: a timer interrupt requested while the LVT was unmasked is delivered after the guest masks it', () => {
  // The count runs out while unmasked (IF=0); the guest then masks the timer and executes STI; HLT.
  const scenario = regression(0, 64, {
    idt: { ...RECOVERING_IDT, timerVector: TIMER_VECTOR }, pagingSetup: null,
    chunks: [[...lvt(0x21), ...initialCount(1), ...lvt(0x10021), ...initialCount(1), 'sti', 'hlt', ...initialCount(1)]],
  });
  const { events, guest } = recordAndCheck(scenario, ['timer-mask'], false);
  assert.ok(events.some((e) => e.kind === 'vm.entry' && e.dom === guest && e.inject === 0x21), 'the pending timer interrupt is injected');
});

test('regression: a timer that runs out while the vCPU is halted is delivered on the entry that wakes it', () => {
  // STI, then the timer armed with one tick, then HLT: the count runs out while the vCPU waits.
  const scenario = regression(0, 64, {
    idt: { ...RECOVERING_IDT, timerVector: TIMER_VECTOR }, pagingSetup: null,
    chunks: [[...lvt(0x21), 'sti', ...initialCount(1), 'hlt', ...initialCount(0)]],
  });
  const { events, guest } = recordAndCheck(scenario, ['timer-mask'], false);
  assert.ok(events.some((e) => e.kind === 'vm.entry' && e.dom === guest && e.inject === 0x21), 'the timer interrupt is injected');
});

// ---- 4. EPT and shadow agree on what the guest sees --------------------------------------------

/**
 * What the guest can observe, in order: its architectural register state after every
 * instruction or event delivery (consecutive equal states collapsed, so that an instruction
 * that retires in the guest under EPT but is emulated after a VM exit under shadow paging
 * looks the same), hypercall results, port I/O and how the domain ended.
 */
function guestTrace(events: Event[], guest: number, image: GuestImage): string[] {
  const cpu = resetCpu(image.entry, image.stack);
  const trace: string[] = [];
  let last = '';
  const snapshot = (): void => {
    const text = `eip=${cpu.eip.toString(16)} gpr=${cpu.gpr.map((r) => r.toString(16)).join(',')} fl=${cpu.eflags.toString(16)} ` +
      `cr0=${cpu.cr0.toString(16)} cr2=${cpu.cr2.toString(16)} cr3=${cpu.cr3.toString(16)} cr4=${cpu.cr4.toString(16)} ` +
      `idt=${cpu.idtrBase.toString(16)}/${cpu.idtrLimit.toString(16)} sti=${cpu.interruptibility}`;
    if (text !== last) trace.push(text);
    last = text;
  };
  for (const e of events) {
    if (!('dom' in e) || e.dom !== guest) continue;
    switch (e.kind) {
      case 'cpu.step': applyCpuDelta(cpu, e.delta); cpu.eip = e.next; snapshot(); break;
      case 'exception': case 'vm.entry': case 'vmcs.write': case 'vcpu.halt': applyCpuDelta(cpu, e.delta); snapshot(); break;
      case 'hypercall': trace.push(`hypercall ${e.op}(${e.args.join(', ')}) ${JSON.stringify(e.text)} = ${e.result}`); break;
      case 'io': trace.push(`io port ${e.port} size ${e.size} ${e.out ? 'out' : 'in'} ${e.value}`); break;
      case 'domain.destroy': trace.push(`destroyed: ${e.reason}`); break;
      default: break;
    }
  }
  return trace;
}

/** The console: bytes written to port 0xE9 and console_io text. */
const consoleOf = (events: Event[], guest: number): string => events
  .filter((e) => 'dom' in e && e.dom === guest)
  .map((e) => (e.kind === 'io' && e.out && e.port === 0xe9 ? String.fromCharCode(e.value & 0xff) : e.kind === 'hypercall' && e.op === 'console_write' ? e.text : ''))
  .join('');

/** Runs a scenario under EPT and under shadow paging and compares what the guest saw. */
function assertPagingMethodsAgree(scenario: X86Scenario, maxEvents: number): void {
  const runsOf = (['ept', 'shadow'] as const).map((paging) => {
    const s = withPaging(scenario, paging);
    const store = dir.store();
    try {
      const { row } = record(store, s.text, { maxEvents }, s.config);
      const events = [...new Timeline(store, row).iterate()].map(([, e]) => e);
      const guest = (events.find((e) => e.kind === 'domain.create' && e.name === 'guest') as EventOf<'domain.create'>).dom;
      const image = s.config.domains.find((d) => d.name === 'guest')!.image!;
      return { trace: guestTrace(events, guest, image), console: consoleOf(events, guest), complete: row.status === 'complete' };
    } finally {
      store.close();
    }
  });
  const [ept, shadow] = runsOf;
  // A run stopped by maxEvents is compared on the part both reached.
  const both = ept.complete && shadow.complete;
  const n = both ? Math.max(ept.trace.length, shadow.trace.length) : Math.min(ept.trace.length, shadow.trace.length);
  let first = -1;
  for (let i = 0; i < n && first < 0; i++) if (ept.trace[i] !== shadow.trace[i]) first = i;
  const context = (t: string[]): string => t.slice(Math.max(0, first - 2), first + 1).join('\n      ');
  assert.ok(first < 0, `what the guest sees differs at item ${first} of its trace:\n    ept:\n      ${context(ept.trace)}\n    shadow:\n      ${context(shadow.trace)}`);
  if (both) assert.equal(shadow.console, ept.console, 'console output');
}

test('EPT and shadow paging show the guest the same instructions, registers and console output', () => {
  // ALU and memory programs inside guest memory that never touch paging (no CR writes, no INVLPG, no time).
  const contained = instructionScenario({ contained: true, paging: false, victim: false, maxChunks: 12 });
  fc.assert(fc.property(contained, (scenario) => {
    assertPagingMethodsAgree(scenario, 40_000);
  }), { numRuns: runs(50) });
});

test('EPT and shadow paging agree when the guest\'s own page tables make an event delivery fault', () => {
  // Paging on with an identity map; pages the delivery needs (IDT gates 128-255, the stack)
  // are unmapped and mapped again, always with INVLPG. Under EPT a #PF during delivery is
  // delivered (serially, or as #DF): the guest must see the same under shadow paging.
  fc.assert(fc.property(pagingDeliveryScenario(), (scenario) => {
    assertPagingMethodsAgree(scenario, 40_000);
  }), { numRuns: runs(40) });
});

test('EPT and shadow paging agree when the guest switches address spaces and changes the tables of one not running', () => {
  // Xen keeps the shadows of recently used address spaces across CR3 loads; a kept shadow
  // must be resynchronised with what the guest wrote in its tables meanwhile.
  fc.assert(fc.property(addressSpaceScenario(), (scenario) => {
    assertPagingMethodsAgree(scenario, 40_000);
  }), { numRuns: runs(60) });
});

// ---- 5. same seed, same hash -----------------------------------------------------------------

test('the same x86 scenario recorded twice has the same head hash', () => {
  const scenarios = fc.oneof(instructionScenario({ maxChunks: 6 }), randomBytesScenario());
  fc.assert(fc.property(scenarios, (scenario) => {
    const a = dir.store();
    const b = dir.store();
    const first = record(a, scenario.text, { maxEvents: 6000 }, scenario.config).row;
    const second = record(b, scenario.text, { maxEvents: 6000 }).row;
    assert.equal(second.eventCount, first.eventCount);
    assert.equal(second.headHash.toString('hex'), first.headHash.toString('hex'));
    a.close();
    b.close();
  }), { numRuns: runs(40) });
});



// ---- events that say what happened -----------------------------------------------------------

test('exception and injection events name the vector, error code and CR2 the guest\'s handler received', () => {
  // Faults meeting a damaged IDT: delivery faults serially (#NP/#GP/#PF after INT n or a
  // benign fault) or escalates to #DF. The event must describe the delivery that happened.
  fc.assert(fc.property(faultScenario(), (scenario) => {
    recordAndCheck(scenario, ['fidelity'], false);
  }), { numRuns: runs(60) });
});

test('io events carry the unsigned value of the access (OUT: EAX truncated to the width; IN: all ones)', () => {
  fc.assert(fc.property(ioScenario(), (scenario) => {
    recordAndCheck(scenario, ['io'], false);
  }), { numRuns: runs(40) });
});

// ---- the local APIC timer ---------------------------------------------------------------------

test('x2APIC timer: a timer whose LVT is masked (as it is at reset) never interrupts the guest, and the mask bit reads back', () => {
  fc.assert(fc.property(timerScenario(), (scenario) => {
    recordAndCheck(scenario, ['timer-mask'], false);
  }), { numRuns: runs(60) });
});

test('x2APIC timer: a periodic timer\'s period is its initial count, whatever the order of the LVT and count writes', () => {
  fc.assert(fc.property(timerScenario(), (scenario) => {
    recordAndCheck(scenario, ['timer-period'], false);
  }), { numRuns: runs(60) });
});

test('a vCPU halted with IF=1 and an unmasked timer armed is woken ("sti; hlt" loses no wakeup)', () => {
  fc.assert(fc.property(timerScenario({ thenWait: true }), (scenario) => {
    recordAndCheck(scenario, ['wake'], false);
  }), { numRuns: runs(60) });
});
