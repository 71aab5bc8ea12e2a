// One instruction at a time: fetch through the bus, decode with src/core/x86, execute on a
// scratch copy of the CPU, and commit the copy only when the instruction retires. Every
// exception or VM exit therefore leaves the caller's CpuState exactly as it was, which is
// what makes the instruction restartable after the caller handles it.
//
// The model is IA-32 protected mode with flat segments and CPL 0 always: the guest kernels
// run everything in ring 0, so there are no privilege checks, no TSS and no stack switches.
// Paging happens behind the bus; the interpreter only ever sees linear addresses.

import { decode, FORMS, MAX_INSTRUCTION_LENGTH } from '../x86/index.ts';
import type { Instruction, Mnemonic } from '../x86/index.ts';
import { assert } from '../../../events/errors.ts';
import type { CpuBus } from './bus.ts';
import type { ExitControls } from './controls.ts';
import { cloneCpu, copyCpuInto, Eflags } from './cpu-state.ts';
import type { CpuState } from './cpu-state.ts';
import { arithmetic, convertToDouble, dec, div, idiv, imul, inc, mul, neg, not, shift } from './execute-arithmetic.ts';
import { call, iretd, jcc, jmp, loop, ret, softwareInterrupt } from './execute-control.ts';
import { lea, mov, movsx, movzx, popad, popfd, popInstruction, pushad, pushfd, pushInstruction, xchg } from './execute-data.ts';
import { stringInstruction } from './execute-string.ts';
import { cli, cpuid, flagControl, hlt, inOut, invlpg, lidt, nop, pause, rdmsr, rdtsc, sti, vmcall, wrmsr } from './execute-system.ts';
import { InstructionFault, faultOutcome } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { exception, Vector } from './outcomes.ts';
import type { ExceptionOutcome, ExitOutcome, StepOutcome } from './outcomes.ts';

export type { ExitControls } from './controls.ts';
export type { ExceptionOutcome, ExitOutcome, RetiredOutcome, StepOutcome } from './outcomes.ts';

type Handler = (context: ExecutionContext) => StepOutcome;

// Every mnemonic of the subset has a handler; the Record type makes a missing one a compile error.
const HANDLERS: Readonly<Record<Mnemonic, Handler>> = {
  mov, movzx, movsx, lea, xchg, push: pushInstruction, pop: popInstruction, pushad, popad, pushfd, popfd,
  add: arithmetic, or: arithmetic, adc: arithmetic, sbb: arithmetic, and: arithmetic, sub: arithmetic,
  xor: arithmetic, cmp: arithmetic, test: arithmetic, inc, dec, neg, not,
  rol: shift, ror: shift, shl: shift, shr: shift, sar: shift, mul, imul, div, idiv, cdq: convertToDouble, cwd: convertToDouble,
  jmp, jo: jcc, jno: jcc, jc: jcc, jnc: jcc, jz: jcc, jnz: jcc, jna: jcc, ja: jcc, js: jcc, jns: jcc, jpe: jcc, jpo: jcc,
  jl: jcc, jnl: jcc, jng: jcc, jg: jcc, call, ret, loop, int: softwareInterrupt, int3: softwareInterrupt, iretd,
  movsb: stringInstruction, movsw: stringInstruction, movsd: stringInstruction, stosb: stringInstruction,
  stosw: stringInstruction, stosd: stringInstruction, lodsb: stringInstruction, lodsw: stringInstruction, lodsd: stringInstruction,
  hlt, cpuid, in: inOut, out: inOut, rdmsr, wrmsr, rdtsc, invlpg, lidt, cli, sti, nop, pause, vmcall,
  clc: flagControl, stc: flagControl, cmc: flagControl, cld: flagControl, std: flagControl,
};

/**
 * Fetches and decodes the instruction at `eip`. A decode that runs out of bytes means the bus
 * stopped at a page that faults, so fetching the next byte yields the fault to report (#PF or
 * an EPT violation on the second page of a page-crossing instruction).
 */
/**
 * Decoded instructions by the memory they were fetched from, for buses whose fetched bytes
 * are views of buffers that change only with a forgetDecodes (CpuBus.immutableFetch): equal
 * buffer and offset mean equal bytes, so the decode can be reused. A pure cache: replay is
 * unaffected.
 */
const decodeCache = new WeakMap<ArrayBufferLike, Map<number, Instruction>>();

/** Decoded instructions by the page (plaintext) and offset they were fetched from. */
const pageDecodeCache = new WeakMap<Uint8Array, Map<number, Instruction>>();
const PAGE_BYTES = 4096;
/** The page of the last fetch and its decodes: consecutive instructions mostly share a page. */
let lastPage: Uint8Array | undefined;
let lastDecodes: Map<number, Instruction> | undefined;

/** A page's bytes changed in place (a live machine's store): its decodes are stale. */
export function forgetDecodes(page: Uint8Array): void {
  pageDecodeCache.delete(page);
  decodeCache.delete(page.buffer);
  if (lastPage === page) {
    lastPage = undefined;
    lastDecodes = undefined;
  }
}

export function fetchInstruction(bus: CpuBus, eip: number): Instruction | ExceptionOutcome | ExitOutcome {
  const offset = eip & (PAGE_BYTES - 1);
  // The common case: the instruction cannot cross into the next page, and its page is an
  // immutable value, so the decode is looked up by the page itself (no view to make).
  if (bus.fetchPage !== undefined && offset <= PAGE_BYTES - MAX_INSTRUCTION_LENGTH) {
    const page = bus.fetchPage(eip);
    if (page instanceof Uint8Array) {
      let byOffset: Map<number, Instruction> | undefined;
      if (page === lastPage && lastDecodes !== undefined) byOffset = lastDecodes;
      else {
        byOffset = pageDecodeCache.get(page);
        if (byOffset === undefined) pageDecodeCache.set(page, (byOffset = new Map()));
        lastPage = page;
        lastDecodes = byOffset;
      }
      const cached = byOffset.get(offset);
      if (cached !== undefined) return cached;
      const decoded = decode(page.subarray(offset, offset + MAX_INSTRUCTION_LENGTH), 0);
      if (decoded.kind === 'instruction') {
        byOffset.set(offset, decoded);
        return decoded;
      }
    }
  }
  if (bus.immutableFetch) {
    const first = bus.fetch(eip, MAX_INSTRUCTION_LENGTH);
    if (first instanceof Uint8Array && first.length === MAX_INSTRUCTION_LENGTH) {
      let byOffset = decodeCache.get(first.buffer);
      const cached = byOffset?.get(first.byteOffset);
      if (cached !== undefined) return cached;
      const decoded = decode(first, 0);
      if (decoded.kind === 'instruction') {
        if (byOffset === undefined) decodeCache.set(first.buffer, (byOffset = new Map()));
        byOffset.set(first.byteOffset, decoded);
        return decoded;
      }
    }
  }
  let bytes: Uint8Array = new Uint8Array(0);
  for (let attempt = 0; attempt < MAX_INSTRUCTION_LENGTH; attempt += 1) {
    const more = bus.fetch((eip + bytes.length) >>> 0, MAX_INSTRUCTION_LENGTH - bytes.length);
    if (!(more instanceof Uint8Array)) return faultOutcome(more, undefined);
    assert(more.length > 0 && more.length <= MAX_INSTRUCTION_LENGTH - bytes.length, () => `cpu: bus fetched ${more.length} bytes`);
    bytes = concatenate(bytes, more);
    const decoded = decode(bytes, 0);
    if (decoded.kind === 'instruction') return decoded;
    if (decoded.kind === 'not-in-subset') return exception(Vector.UD);
    if (bytes.length >= MAX_INSTRUCTION_LENGTH) break;
  }
  // 15 bytes and still truncated cannot happen: no instruction of the subset is that long.
  return exception(Vector.UD);
}

function concatenate(first: Uint8Array, second: Uint8Array): Uint8Array {
  if (first.length === 0) return second;
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first, 0);
  joined.set(second, first.length);
  return joined;
}

/**
 * Executes one instruction. On 'retired' `cpu` holds the new state; on 'exception' or 'exit'
 * it is unchanged and the caller decides (exception bitmap, exit handler) before it calls
 * deliverEvent or resumes. `tsc` is what RDTSC reads when it does not exit.
 */
export function step(cpu: CpuState, bus: CpuBus, controls: ExitControls, tsc: number): StepOutcome {
  const scratch = cloneCpu(cpu);
  const outcome = stepInto(cpu, scratch, bus, controls, tsc);
  if (outcome.kind === 'retired') copyCpuInto(cpu, scratch);
  return outcome;
}

/**
 * step() without the copies, for callers that keep the old state anyway: `scratch` must
 * equal `cpu` on entry; on 'retired' it holds the new state, and `cpu` is never changed.
 */
export function stepInto(cpu: Readonly<CpuState>, scratch: CpuState, bus: CpuBus, controls: ExitControls, tsc: number): StepOutcome {
  const fetched = fetchInstruction(bus, cpu.eip);
  if (fetched.kind !== 'instruction') return fetched;
  const nextEip = (cpu.eip + fetched.length) >>> 0;
  scratch.eip = nextEip;
  const context: ExecutionContext = { cpu: scratch, bus, controls, tsc, instruction: fetched, instructionEip: cpu.eip, nextEip };
  const outcome = execute(context);
  if (outcome.kind !== 'retired') return outcome;
  // TF as it was BEFORE the instruction decides the trap, so the POPFD that sets TF does not
  // trap itself and the one that clears it still does (SDM Vol. 3, 18.3.1.4).
  const singleStep = (cpu.eflags & Eflags.TF) !== 0;
  return singleStep ? { ...outcome, singleStep: true } : outcome;
}

/** The handlers by form index: an array load per instruction rather than a lookup by name. */
const HANDLER_BY_FORM: readonly Handler[] = FORMS.map((form) => HANDLERS[form.mnemonic]);

function execute(context: ExecutionContext): StepOutcome {
  try {
    return HANDLER_BY_FORM[context.instruction.form.index](context);
  } catch (error) {
    if (error instanceof InstructionFault) return error.outcome;
    throw error;
  }
}
