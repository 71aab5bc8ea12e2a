/**
 * Where the bytes an x86 step writes come from: a shadow of origins for the registers and
 * memory, one rule per mnemonic, as PANDA's taint plugin keeps one per operation.
 *
 * - mov-like instructions copy byte for byte (mov, movzx/movsx's low bytes, push/pop,
 *   xchg, the string moves); a zero or sign extension is a constant or the sign byte;
 * - arithmetic unions: or/and/xor byte by byte, add/sub/adc/sbb/inc/dec/neg byte i from
 *   bytes 0..i (the carry moves up), shifts, multiplies and divides every byte from every byte;
 * - immediates are origins (only when nothing else feeds the byte: `add eax, 4` keeps
 *   eax's origins), and so are constants the processor makes (a return address, a cleared
 *   register, what cpuid or rdtsc reads);
 * - address registers are not data: `mov eax, [esi]` takes eax from memory, not from esi
 *   (lea is arithmetic: its result is the address).
 *
 * A def says, for one destination byte, which bytes it was made from (as they were before
 * the step) or that it is an origin. The step's accesses (cpu-replay.ts) give the host
 * bytes behind each linear address.
 */
import { EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP, type Instruction, type MemoryOperand, type Operand } from '../../core/hardware/x86/index.ts';
import { effectiveAddress } from '../../core/hardware/cpu/operands.ts';
import type { CpuState } from '../../core/hardware/cpu/cpu-state.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import type { ReplayedStep } from './cpu-replay.ts';
import { EFLAGS_SLOT, memLoc, regLoc, type Loc } from './locations.ts';

/** Why a byte has no source: it was made here. */
export type OriginKind =
  | 'immediate' /* an operand of the instruction */
  | 'constant' /* made by the processor: a return address, a zero extension, a cleared register, an exception frame */
  | 'cpu' /* read from the processor itself: cpuid, rdtsc, a control register */
  | 'hypervisor' /* written into the vCPU by Xen's exit handler (a hypercall result, an emulated read) */;

export interface Def {
  dest: Loc;
  /** The bytes it was made from, as they were before the step; empty for an origin. */
  srcs: Loc[];
  origin?: OriginKind;
}

type Bytes = Loc[];

/** The registers and memory of one replayed step, as byte locations. */
class Operands {
  private readonly pages = new Map<number, number>();

  constructor(readonly step: ReplayedStep) {
    for (const access of step.accesses) {
      if (access.kind === 'walk-read' || access.kind === 'walk-write') continue;
      let linear = access.linear;
      for (const piece of access.pieces) {
        this.pages.set(linear >>> 12, piece.mfn);
        linear = (linear + piece.length) >>> 0;
      }
    }
  }

  get cpu(): CpuState {
    return this.step.before;
  }

  reg(number: number, size: 8 | 16 | 32): Bytes {
    const { dom, vcpu } = this.step;
    if (size === 8) return number < 4 ? [regLoc(dom, vcpu, number, 0)] : [regLoc(dom, vcpu, number - 4, 1)];
    return Array.from({ length: size / 8 }, (_, i) => regLoc(dom, vcpu, number, i));
  }

  reg32(number: number): Bytes {
    return this.reg(number, 32);
  }

  flags(): Bytes {
    return Array.from({ length: 4 }, (_, i) => regLoc(this.step.dom, this.step.vcpu, EFLAGS_SLOT, i));
  }

  /** Host bytes at a linear address (undefined where the step did not reach: a fault, an exit). */
  memory(linear: number, length: number): Bytes | undefined {
    const out: Bytes = [];
    for (let i = 0; i < length; i++) {
      const address = (linear + i) >>> 0;
      const mfn = this.pages.get(address >>> 12);
      if (mfn === undefined) return undefined;
      out.push(memLoc(mfn, address % PAGE_SIZE));
    }
    return out;
  }

  /** An operand's bytes; an immediate is undefined (an origin, not a location). */
  of(operand: Operand, size: number = operandBytes(operand)): Bytes | undefined {
    if (operand.kind === 'reg') return operand.register.kind === 'gpr' ? this.reg(operand.register.number, operand.register.size) : undefined;
    if (operand.kind === 'mem') return this.memory(effectiveAddress(this.cpu, operand), size);
    return undefined;
  }

  /** The registers an address is computed from (for lea). */
  addressRegisters(memory: MemoryOperand): Bytes {
    return [...(memory.base ? this.reg32(memory.base.number) : []), ...(memory.index ? this.reg32(memory.index.number) : [])];
  }
}

function operandBytes(operand: Operand): number {
  if (operand.kind === 'reg') return operand.register.kind === 'gpr' ? operand.register.size / 8 : 4;
  if (operand.kind === 'mem') return operand.size / 8;
  if (operand.kind === 'imm') return operand.size / 8;
  return 4;
}

// ---- building defs ----------------------------------------------------------------------

class Defs {
  readonly list: Def[] = [];

  /** dest[i] <- src[i]; past the source's end (or for an immediate) the origin. */
  copy(dest: Bytes | undefined, src: Bytes | undefined, beyond: OriginKind = 'immediate'): void {
    if (dest === undefined) return;
    dest.forEach((d, i) => {
      const s = src?.[i];
      this.list.push(s === undefined ? { dest: d, srcs: [], origin: src === undefined ? 'immediate' : beyond } : { dest: d, srcs: [s] });
    });
  }

  /** Every dest byte from all of `srcs` (an origin when nothing feeds it). */
  mix(dest: Bytes | undefined, srcs: (Bytes | undefined)[], origin: OriginKind = 'immediate'): void {
    if (dest === undefined) return;
    const all = [...new Set(srcs.flatMap((s) => s ?? []))];
    for (const d of dest) this.list.push(all.length === 0 ? { dest: d, srcs: [], origin } : { dest: d, srcs: all });
  }

  /** dest[i] from a[i] and b[i] (or, with `carry`, from a[0..i] and b[0..i]). */
  bytewise(dest: Bytes | undefined, a: Bytes | undefined, b: Bytes | undefined, carry: boolean, extra: Bytes = []): void {
    if (dest === undefined) return;
    dest.forEach((d, i) => {
      const from = (x: Bytes | undefined): Loc[] => (x === undefined ? [] : carry ? x.slice(0, i + 1) : x[i] === undefined ? [] : [x[i]]);
      const srcs = [...new Set([...from(a), ...from(b), ...extra])];
      this.list.push(srcs.length === 0 ? { dest: d, srcs: [], origin: 'immediate' } : { dest: d, srcs });
    });
  }

  origin(dest: Bytes | undefined, origin: OriginKind): void {
    for (const d of dest ?? []) this.list.push({ dest: d, srcs: [], origin });
  }
}

// ---- the rules ----------------------------------------------------------------------------

/** The stack moves: esp is computed from esp (a pointer, kept apart from the data it addresses). */
function moveStack(defs: Defs, ops: Operands): void {
  const esp = ops.reg32(ESP);
  defs.mix(esp, [esp]);
}

function push(defs: Defs, ops: Operands, at: number, src: Bytes | undefined, srcOrigin: OriginKind = 'immediate'): void {
  const slot = ops.memory(at, 4);
  if (src === undefined) defs.origin(slot, srcOrigin);
  else defs.copy(slot, src, 'constant');
}

const ALU_CARRY = new Set(['add', 'sub', 'adc', 'sbb']);

function arithmetic(defs: Defs, ops: Operands, instruction: Instruction): void {
  const [destination, source] = instruction.operands;
  const dest = ops.of(destination);
  const src = ops.of(source, operandBytes(destination));
  const flags = ops.flags();
  const m = instruction.mnemonic;
  const sameRegister = destination.kind === 'reg' && source.kind === 'reg' && destination.register === source.register;
  if (m === 'cmp' || m === 'test') {
    defs.mix(flags, [dest, src]);
    return;
  }
  if (sameRegister && (m === 'xor' || m === 'sub')) {
    defs.origin(dest, 'constant');
    defs.origin(flags, 'constant');
    return;
  }
  const carryIn = m === 'adc' || m === 'sbb' ? flags : [];
  defs.bytewise(dest, dest, src, ALU_CARRY.has(m), carryIn);
  defs.mix(flags, [dest, src, carryIn]);
}

function multiplyDivide(defs: Defs, ops: Operands, instruction: Instruction): void {
  const m = instruction.mnemonic;
  const operands = instruction.operands;
  if (m === 'imul' && operands.length > 1) {
    const dest = ops.of(operands[0]);
    const [left, right] = operands.length === 2 ? [dest, ops.of(operands[1])] : [ops.of(operands[1]), ops.of(operands[2])];
    defs.mix(dest, [left, right]);
    defs.mix(ops.flags(), [left, right]);
    return;
  }
  const source = ops.of(operands[0]);
  const size = operandBytes(operands[0]) * 8 as 8 | 16 | 32;
  const acc = ops.reg(EAX, size);
  const ext = size === 8 ? ops.reg(4, 8) : ops.reg(EDX, size);
  const inputs = m === 'div' || m === 'idiv' ? [acc, ext, source] : [acc, source];
  defs.mix([...acc, ...ext], inputs);
  if (m === 'mul' || m === 'imul') defs.mix(ops.flags(), inputs);
}

function stringMove(defs: Defs, ops: Operands, instruction: Instruction): void {
  const m = instruction.mnemonic;
  const bytes = m.endsWith('b') ? 1 : m.endsWith('w') ? 2 : 4;
  const cpu = ops.cpu;
  if (instruction.prefixes.repeat !== null) {
    if (cpu.gpr[ECX] === 0) return;
    defs.mix(ops.reg32(ECX), [ops.reg32(ECX)]);
  }
  const acc = ops.reg(EAX, (bytes * 8) as 8 | 16 | 32);
  if (m.startsWith('movs')) defs.copy(ops.memory(cpu.gpr[EDI], bytes), ops.memory(cpu.gpr[ESI], bytes));
  else if (m.startsWith('stos')) defs.copy(ops.memory(cpu.gpr[EDI], bytes), acc);
  else defs.copy(acc, ops.memory(cpu.gpr[ESI], bytes));
  if (!m.startsWith('stos')) defs.mix(ops.reg32(ESI), [ops.reg32(ESI)]);
  if (!m.startsWith('lods')) defs.mix(ops.reg32(EDI), [ops.reg32(EDI)]);
}

const PUSHAD_ORDER = [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI];

/** The defs of an instruction that retired. */
function instructionDefs(defs: Defs, ops: Operands, instruction: Instruction): void {
  const cpu = ops.cpu;
  const operands = instruction.operands;
  const esp = cpu.gpr[ESP];
  switch (instruction.mnemonic) {
    case 'mov': {
      const [destination, source] = operands;
      if (source.kind === 'reg' && source.register.kind === 'cr') defs.origin(ops.of(destination), 'cpu');
      else defs.copy(ops.of(destination), ops.of(source));
      return;
    }
    case 'movzx':
    case 'movsx': {
      const dest = ops.of(operands[0]);
      const src = ops.of(operands[1]);
      if (instruction.mnemonic === 'movzx') defs.copy(dest, src, 'constant');
      else dest?.forEach((d, i) => defs.list.push({ dest: d, srcs: src === undefined ? [] : [src[Math.min(i, src.length - 1)]] }));
      return;
    }
    case 'lea': defs.mix(ops.of(operands[0]), [ops.addressRegisters(operands[1] as MemoryOperand)]); return;
    case 'xchg': {
      const a = ops.of(operands[0]);
      const b = ops.of(operands[1]);
      defs.copy(a, b);
      defs.copy(b, a);
      return;
    }
    case 'push': {
      push(defs, ops, esp - 4, ops.of(operands[0]));
      moveStack(defs, ops);
      return;
    }
    case 'pop': {
      const dest = ops.of(operands[0]);
      defs.copy(dest, ops.memory(esp, dest?.length ?? 4));
      moveStack(defs, ops);
      return;
    }
    case 'pushad':
      PUSHAD_ORDER.forEach((r, i) => push(defs, ops, esp - 4 * (i + 1), ops.reg32(r)));
      moveStack(defs, ops);
      return;
    case 'popad':
      [...PUSHAD_ORDER].reverse().forEach((r, i) => { if (r !== ESP) defs.copy(ops.reg32(r), ops.memory(esp + 4 * i, 4)); });
      moveStack(defs, ops);
      return;
    case 'pushfd': push(defs, ops, esp - 4, ops.flags()); moveStack(defs, ops); return;
    case 'popfd': defs.mix(ops.flags(), [ops.flags(), ops.memory(esp, 4)]); moveStack(defs, ops); return;
    case 'add': case 'or': case 'adc': case 'sbb': case 'and': case 'sub': case 'xor': case 'cmp': case 'test':
      arithmetic(defs, ops, instruction);
      return;
    case 'inc': case 'dec': case 'neg': case 'not': {
      const dest = ops.of(operands[0]);
      defs.bytewise(dest, dest, undefined, instruction.mnemonic !== 'not');
      if (instruction.mnemonic !== 'not') defs.mix(ops.flags(), [dest]);
      return;
    }
    case 'rol': case 'ror': case 'shl': case 'shr': case 'sar': {
      const dest = ops.of(operands[0]);
      const count = ops.of(operands[1]);
      defs.mix(dest, [dest, count]);
      defs.mix(ops.flags(), [dest, count]);
      return;
    }
    case 'mul': case 'imul': case 'div': case 'idiv': multiplyDivide(defs, ops, instruction); return;
    case 'cdq': case 'cwd': {
      const size = instruction.operandSize;
      const acc = ops.reg(EAX, size);
      defs.mix(ops.reg(EDX, size), [[acc[acc.length - 1]]]);
      return;
    }
    case 'call': push(defs, ops, esp - 4, undefined, 'constant'); moveStack(defs, ops); return;
    case 'ret': moveStack(defs, ops); return;
    case 'iretd': defs.mix(ops.flags(), [ops.flags(), ops.memory(esp + 8, 4)]); moveStack(defs, ops); return;
    case 'loop': defs.mix(ops.reg32(ECX), [ops.reg32(ECX)]); return;
    case 'movsb': case 'movsw': case 'movsd': case 'stosb': case 'stosw': case 'stosd': case 'lodsb': case 'lodsw': case 'lodsd':
      stringMove(defs, ops, instruction);
      return;
    case 'cpuid': for (const r of [EAX, EBX, ECX, EDX]) defs.origin(ops.reg32(r), 'cpu'); return;
    case 'rdtsc': case 'rdmsr': for (const r of [EAX, EDX]) defs.origin(ops.reg32(r), 'cpu'); return;
    case 'in': defs.origin(ops.of(operands[0]), 'hypervisor'); return;
    default:
      // Control transfer (jmp, jcc, int), and system instructions that move no data a
      // guest keeps (hlt, out, wrmsr, invlpg, lidt, cli, sti, nop, pause, vmcall).
      return;
  }
}

/**
 * The defs of a replayed x86 step: the retired instruction's, or what delivering an event
 * wrote (the exception frame: constants, and the saved EFLAGS); nothing for a step whose
 * instruction exited (the exit handler's register writes come as vmcs.write: see
 * registerWrites).
 */
export function stepDefs(step: ReplayedStep): Def[] {
  const defs = new Defs();
  const ops = new Operands(step);
  if (step.outcome === 'retired' && step.instruction !== undefined) instructionDefs(defs, ops, step.instruction);
  if (step.delivered !== undefined) {
    for (const access of step.accesses) {
      if (access.kind !== 'write') continue;
      defs.origin(ops.memory(access.linear, access.length), 'constant');
    }
    defs.mix(ops.reg32(ESP), [ops.reg32(ESP)]);
    defs.origin(ops.flags(), 'constant');
  }
  return defs.list;
}

/** The register slots (0..7, 8 EFLAGS) a list of defs writes, as a bitmask. */
export function writtenSlots(defs: readonly Def[], dom: number, vcpu: number): number {
  let mask = 0;
  const first = regLoc(dom, vcpu, 0, 0);
  for (const def of defs) {
    if (def.dest >= 0) continue;
    const n = first - def.dest;
    // regLoc counts down: slot s byte b of this vCPU is first - (s*4 + b).
    if (n >= 0 && n < 16 * 4) mask |= 1 << Math.floor(n / 4);
  }
  return mask;
}

/**
 * Registers the hypervisor or a delivery wrote (a vmcs.write, vm.entry, exception or
 * vcpu.halt delta): every byte of each register the delta names is an origin (EIP and the
 * control registers are not data and are left out).
 */
export function deltaDefs(dom: number, vcpu: number, delta: readonly number[], origin: OriginKind): Def[] {
  const defs: Def[] = [];
  for (let i = 0; i < delta.length; i += 2) {
    const index = delta[i];
    const slot = index < 8 ? index : index === 9 ? EFLAGS_SLOT : -1;
    if (slot < 0) continue;
    for (let b = 0; b < 4; b++) defs.push({ dest: regLoc(dom, vcpu, slot, b), srcs: [], origin });
  }
  return defs;
}
