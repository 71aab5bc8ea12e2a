/**
 * The hypervisor's VM-exit handlers: what Xen does when the guest traps, decided from the
 * exit information and the guest state, returned as an action for the vCPU driver to apply.
 */
import type { Fault } from '../../hardware/cpu/bus.ts';
import { checkCr0, checkCr4, Cr4 } from '../../hardware/cpu/control-registers.ts';
import { cloneCpu, type CpuState } from '../../hardware/cpu/cpu-state.ts';
import { ExitReason } from '../../hardware/cpu/outcomes.ts';
import { CR0_PG, guestWalk, PTE_DIRTY, PTE_WRITABLE, type WalkPort } from '../../hardware/paging/guest-walk.ts';
import { writeInitialCount, writeLvt, type Lapic } from '../../hardware/vmx/lapic.ts';
import { PAGE_SIZE } from '../config.ts';
import { isPciConfigPort, pciConfigDataAccess } from '../io/vpci.ts';
import { readGuestLinear } from '../memory/copy-from-guest.ts';
import { readFramePlain, writeFrame } from '../memory/guest-memory.ts';
import {
  addToPhysmap, addToPhysmapCheck, decreaseCount, decreaseReservation, EINVAL, populateCheck, populatePhysmap,
} from '../memory/memory-ops.ts';
import { gp, resume, type ExitAction, type ExitContext } from './exit-action.ts';
import { emulateMmio, inMmioWindow } from './mmio.ts';
import type { TlbEntry } from '../state.ts';

const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESI = 6;
const ENOSYS = -38;
const EFAULT = -14;
const CONSOLE_WRITE_MAX = 1024;
export const DEBUG_CONSOLE_PORT = 0xe9;
const HYPERCALL_MEMORY_OP = 12, HYPERCALL_CONSOLE_IO = 18, HYPERCALL_SCHED_OP = 29;
const XENMEM_DECREASE_RESERVATION = 1, XENMEM_POPULATE_PHYSMAP = 6, XENMEM_ADD_TO_PHYSMAP = 7;
const SCHEDOP_YIELD = 0, SCHEDOP_SHUTDOWN = 2;

/**
 * A copy of the guest state with EIP moved past the exiting instruction. The instruction
 * ran, so an STI shadow it was under is over (as Xen's update_guest_eip clears it).
 */
function advanced(ctx: ExitContext): CpuState {
  const cpu = cloneCpu(ctx.x86.cpu);
  cpu.eip = (cpu.eip + ctx.exit.length) >>> 0;
  cpu.interruptibility = 0;
  return cpu;
}

export function handleExit(ctx: ExitContext): ExitAction {
  switch (ctx.exit.reason) {
    case ExitReason.EXTERNAL_INTERRUPT:
    case ExitReason.INTERRUPT_WINDOW:
      return { kind: 'resume', cpu: cloneCpu(ctx.x86.cpu), inject: null };
    case ExitReason.CPUID: return resume(cpuid(advanced(ctx)));
    case ExitReason.HLT: return { kind: 'halt', cpu: advanced(ctx) };
    case ExitReason.VMCALL: return hypercall(ctx);
    case ExitReason.IO_INSTRUCTION: return portIo(ctx);
    case ExitReason.MSR_READ:
    case ExitReason.MSR_WRITE: return msr(ctx);
    case ExitReason.CR_ACCESS: return crAccess(ctx);
    case ExitReason.INVLPG: return invlpg(ctx);
    case ExitReason.EXCEPTION_NMI: return shadowPageFault(ctx);
    case ExitReason.EPT_VIOLATION:
      // Xen's policy for guest RAM it never populated: the guest gets a fault, never a frame.
      return { kind: 'resume', cpu: cloneCpu(ctx.x86.cpu), inject: gp() };
    // Xen marks emulated MMIO with misconfigured EPT entries (as KVM does): the exit is the trap.
    case ExitReason.EPT_MISCONFIG:
      return inMmioWindow(ctx, ctx.exit.gpa) ? emulateMmio(ctx, p2mPort(ctx)) : { kind: 'crash', reason: 'EPT misconfiguration' };
    case ExitReason.TRIPLE_FAULT: return { kind: 'crash', reason: 'triple fault' };
    default: return { kind: 'crash', reason: `unhandled VM exit ${ctx.exit.reason}` };
  }
}

/** A 12-character vendor string as the three little-endian words CPUID returns it in. */
const vendorWords = (text: string): number[] => [0, 4, 8].map((at) => Buffer.from(text, 'latin1').readUInt32LE(at));
const [INTEL_B, INTEL_D, INTEL_C] = vendorWords('GenuineIntel');
const [XEN_B, XEN_C, XEN_D] = vendorWords('XenVMMXenVMM');

/** CPUID as Xen presents it: an Intel CPU with the hypervisor bit and Xen's leaves. */
function cpuid(cpu: CpuState): CpuState {
  const leaf = cpu.gpr[EAX];
  let regs: [number, number, number, number];
  if (leaf === 0) {
    regs = [1, INTEL_B, INTEL_C, INTEL_D];
  } else if (leaf === 1) {
    // Family 6; ECX bit 31 = running under a hypervisor; EDX: FPU PSE TSC MSR APIC.
    regs = [0x000306a9, 0x00010800, 0x80000000, (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9)];
  } else if (leaf === 0x40000000) {
    regs = [0x40000002, XEN_B, XEN_C, XEN_D];
  } else {
    regs = [0, 0, 0, 0];
  }
  cpu.gpr[EAX] = regs[0] >>> 0;
  cpu.gpr[EBX] = regs[1] >>> 0;
  cpu.gpr[ECX] = regs[2] >>> 0;
  cpu.gpr[EDX] = regs[3] >>> 0;
  return cpu;
}

function hypercall(ctx: ExitContext): ExitAction {
  const cpu = advanced(ctx);
  const [nr, arg1, arg2, arg3] = [cpu.gpr[EAX], cpu.gpr[EBX], cpu.gpr[ECX], cpu.gpr[EDX]];
  let result = ENOSYS;
  if (nr === HYPERCALL_CONSOLE_IO && arg1 === 0) {
    const text = readGuestText(ctx, arg3, arg2);
    result = text === undefined ? EFAULT : text.length;
    emitHypercall(ctx, 'console_write', [arg2, arg3], result, text ?? '');
  } else if (nr === HYPERCALL_SCHED_OP && (arg1 === SCHEDOP_YIELD || arg1 === SCHEDOP_SHUTDOWN)) {
    emitHypercall(ctx, arg1 === SCHEDOP_YIELD ? 'sched_yield' : 'shutdown', [], 0);
    if (arg1 === SCHEDOP_SHUTDOWN) return { kind: 'shutdown' };
    result = 0;
  } else if (nr === HYPERCALL_MEMORY_OP && arg1 === XENMEM_POPULATE_PHYSMAP) {
    const errno = populateCheck(ctx.host.state, ctx.domain.id, arg2 | 0, arg3 | 0);
    result = errno === 0 ? arg3 : errno;
    emitHypercall(ctx, 'populate_physmap', [arg2 | 0, arg3 | 0], result);
    if (errno === 0) populatePhysmap(ctx.host, ctx.domain.id, arg2, arg3);
  } else if (nr === HYPERCALL_MEMORY_OP && arg1 === XENMEM_DECREASE_RESERVATION) {
    const count = Math.min(arg3 >>> 0, 4096);
    const gfns = Array.from({ length: count }, (_, i) => arg2 + i);
    const done = arg3 >>> 0 > 4096 ? EINVAL : decreaseCount(ctx.host.state, ctx.domain.id, gfns);
    result = done;
    emitHypercall(ctx, 'decrease_reservation', [arg2 | 0, arg3 | 0], result);
    if (done > 0) decreaseReservation(ctx.host, ctx.domain.id, gfns.slice(0, done));
  } else if (nr === HYPERCALL_MEMORY_OP && arg1 === XENMEM_ADD_TO_PHYSMAP) {
    // XENMAPSPACE_gmfn_foreign: ECX = the foreign domain, EDX = its gfn, ESI = where to map it.
    const [domid, gfn, gpfn] = [arg2 | 0, arg3 | 0, cpu.gpr[ESI] | 0];
    result = addToPhysmapCheck(ctx.host.state, ctx.domain.id, domid, gfn, gpfn);
    emitHypercall(ctx, 'add_to_physmap', [domid, gfn, gpfn], result);
    if (result === 0) addToPhysmap(ctx.host, ctx.domain.id, domid, gfn, gpfn);
  } else {
    emitHypercall(ctx, `hypercall_${nr}`, [arg1 | 0, arg2 | 0, arg3 | 0], ENOSYS);
  }
  cpu.gpr[EAX] = result >>> 0;
  return resume(cpu);
}

function emitHypercall(ctx: ExitContext, op: string, args: number[], result: number, text = ''): void {
  ctx.host.emit('hypercall', { dom: ctx.domain.id, vcpu: ctx.vcpu, op, args, text, result });
}

/**
 * Copies a guest string through its own address space, as copy_from_guest does: the
 * guest's page tables and the p2m (not the shadow or the TLB, which may not have it yet).
 */
function readGuestText(ctx: ExitContext, linear: number, length: number): string | undefined {
  if (length > CONSOLE_WRITE_MAX) return undefined;
  const bytes = readGuestLinear(ctx.host.state, ctx.domain.id, ctx.vcpu, linear, length);
  return bytes === undefined || bytes.length < length ? undefined : Buffer.from(bytes).toString('latin1');
}

function portIo(ctx: ExitContext): ExitAction {
  const q = ctx.exit.qualification;
  const size = (q & 7) + 1;
  const isIn = (q & 8) !== 0;
  const port = q >>> 16;
  const cpu = advanced(ctx);
  const mask = size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
  // The guest's virtual PCI bus answers configuration mechanism #1; elsewhere no device
  // answers: reads float high and writes vanish (a byte to DEBUG_CONSOLE_PORT is console output).
  let value = isIn ? mask : (cpu.gpr[EAX] & mask) >>> 0;
  if (isPciConfigPort(port, size)) value = (pciConfigDataAccess(ctx.host, ctx.domain.id, port, size, !isIn, value) & mask) >>> 0;
  if (isIn) cpu.gpr[EAX] = ((cpu.gpr[EAX] & ~mask) | value) >>> 0;
  ctx.host.emit('io', { dom: ctx.domain.id, vcpu: ctx.vcpu, port, size, out: !isIn, value });
  return resume(cpu);
}

const MSR_TSC = 0x10, MSR_APIC_BASE = 0x1b;
const MSR_X2APIC_EOI = 0x80b, MSR_X2APIC_LVT_TIMER = 0x832, MSR_X2APIC_TIMER_INITIAL = 0x838;
const MSR_X2APIC_TIMER_CURRENT = 0x839, MSR_X2APIC_TIMER_DIVIDE = 0x83e;

function msr(ctx: ExitContext): ExitAction {
  const cpu = advanced(ctx);
  const index = cpu.gpr[ECX];
  const tick = ctx.host.state.tick;
  const lapic = ctx.x86.lapic;
  if (ctx.exit.reason === ExitReason.MSR_READ) {
    let value: number | undefined;
    if (index === MSR_TSC) value = tick;
    else if (index === MSR_APIC_BASE) value = 0xfee00000 | (1 << 11) | (1 << 10) | (1 << 8);
    else if (index === MSR_X2APIC_TIMER_CURRENT) value = lapic.deadline < 0 ? 0 : Math.max(0, lapic.deadline - tick);
    else if (index === MSR_X2APIC_LVT_TIMER) value = lapic.lvt;
    else if (index === MSR_X2APIC_TIMER_INITIAL) value = lapic.initialCount;
    if (value === undefined) return resume(cloneCpu(ctx.x86.cpu), gp());
    cpu.gpr[EAX] = value % 2 ** 32 >>> 0;
    cpu.gpr[EDX] = Math.floor(value / 2 ** 32) >>> 0;
    return resume(cpu);
  }
  const value = cpu.gpr[EAX];
  if (index === MSR_X2APIC_LVT_TIMER) {
    emitTimer(ctx, writeLvt(lapic, value, tick));
  } else if (index === MSR_X2APIC_TIMER_INITIAL) {
    emitTimer(ctx, writeInitialCount(lapic, value, tick));
  } else if (index === MSR_X2APIC_EOI || index === MSR_X2APIC_TIMER_DIVIDE || index === MSR_TSC) {
    // EOI needs no bookkeeping (one interrupt source); divide and TSC writes are accepted and ignored.
  } else {
    return resume(cloneCpu(ctx.x86.cpu), gp());
  }
  return resume(cpu);
}

function emitTimer(ctx: ExitContext, next: Lapic): void {
  ctx.host.emit('lapic.timer', { dom: ctx.domain.id, vcpu: ctx.vcpu, lvt: next.lvt, initialCount: next.initialCount, deadline: next.deadline, pending: next.pending });
}

/** MOV to/from CR under shadow paging (and CR0/CR4 writes of masked bits). */
function crAccess(ctx: ExitContext): ExitAction {
  const q = ctx.exit.qualification;
  const cr = q & 15;
  const accessType = (q >>> 4) & 3;
  const gpr = (q >>> 8) & 15;
  const cpu = advanced(ctx);
  if (accessType === 1) {
    cpu.gpr[gpr] = cr === 3 ? cpu.cr3 : cr === 0 ? cpu.cr0 : cr === 4 ? cpu.cr4 : cpu.cr2;
    return resume(cpu);
  }
  const value = cpu.gpr[gpr];
  if (cr === 3 && (cpu.cr0 & CR0_PG) !== 0) {
    cpu.cr3 = value;
    switchShadow(ctx, cpu);
    return resume(cpu);
  }
  if (cr === 3) {
    cpu.cr3 = value;
  } else {
    // The checks the processor makes on MOV to CR0/CR4, made here for the bits that exit;
    // VMXE is refused outright: this Xen offers no nested virtualisation.
    const checked = cr === 0 ? checkCr0(value) : (value & Cr4.VMXE) !== 0 ? undefined : checkCr4(value);
    if (checked === undefined) return resume(cloneCpu(ctx.x86.cpu), gp());
    if (cr === 0) cpu.cr0 = checked;
    else cpu.cr4 = checked;
  }
  // A new address space (or paging mode): the shadow and the TLB are stale as a whole.
  flushShadow(ctx, -1);
  return resume(cpu);
}

/** Address spaces whose shadows Xen keeps besides the running one. */
export const SHADOW_CACHE_ADDRESS_SPACES = 8;

/**
 * MOV to CR3 with paging on: Xen keeps the shadows of recently used address spaces, so a
 * switch back to one does not rebuild it fault by fault. The outgoing shadow is kept under
 * its page directory, the least recently used one dropped beyond SHADOW_CACHE_ADDRESS_SPACES;
 * the incoming one, if kept, becomes current after a resync: the guest may have changed its
 * tables while another address space ran (Xen's out-of-sync shadows), so each entry is
 * walked again in the guest's tables and dropped when it no longer matches. A CR3 load
 * flushes the TLB.
 */
function switchShadow(ctx: ExitContext, next: CpuState): void {
  const { host, domain, vcpu, x86 } = ctx;
  const save = x86.cpu.cr3 >>> 12;
  const restore = next.cr3 >>> 12;
  const kept = [...x86.shadowCache.keys()].filter((cr3) => cr3 !== restore && cr3 !== save);
  if (save !== restore) kept.push(save);
  const evict = kept.length > SHADOW_CACHE_ADDRESS_SPACES ? kept[0] : -1;
  const incoming = restore === save ? x86.shadow : x86.shadowCache.get(restore);
  const stale: number[] = [];
  let refs = 0;
  for (const [page, entry] of incoming ?? []) {
    const now = shadowEntryFor(ctx, next, page << 12, false);
    refs += now.refs;
    if (now.entry === undefined || now.entry.mfn !== entry.mfn || now.entry.flags !== entry.flags) stale.push(page);
  }
  host.emit('shadow.switch', { dom: domain.id, vcpu, save, restore, evict, refs });
  for (const page of stale) host.emit('shadow.sync', { dom: domain.id, vcpu, op: 'flush', page, mfn: -1, flags: 0 });
  host.emit('tlb.flush', { dom: domain.id, vcpu, scope: 'all', page: -1 });
}

/**
 * The shadow entry the guest's tables give a linear page now, walked through the p2m without
 * touching the guest's accessed and dirty bits (a resync reads; only the guest's own accesses
 * set them). Undefined when the guest does not map the page (or maps emulated MMIO).
 */
function shadowEntryFor(ctx: ExitContext, cpu: CpuState, linear: number, isWrite: boolean): { entry: TlbEntry | undefined; refs: number } {
  const walk = guestWalk(new P2mPort(ctx, false), cpu, linear, isWrite);
  if ('kind' in walk || inMmioWindow(ctx, walk.gpa)) return { entry: undefined, refs: 'kind' in walk ? 0 : walk.refs };
  const mfn = ctx.domain.p2m.get(Math.floor(walk.gpa / PAGE_SIZE));
  return { entry: mfn === undefined ? undefined : { mfn, flags: shadowFlags(walk.flags, isWrite) }, refs: walk.refs };
}

/** Writable in the shadow only once the guest's dirty bit is set, so the first write traps. */
function shadowFlags(flags: number, isWrite: boolean): number {
  return isWrite || (flags & PTE_DIRTY) !== 0 ? flags : flags & ~PTE_WRITABLE;
}

function invlpg(ctx: ExitContext): ExitAction {
  flushShadow(ctx, ctx.exit.qualification >>> 12);
  return resume(advanced(ctx));
}

function flushShadow(ctx: ExitContext, page: number): void {
  const { host, domain, vcpu } = ctx;
  host.emit('shadow.sync', { dom: domain.id, vcpu, op: 'flush', page, mfn: -1, flags: 0 });
  host.emit('tlb.flush', { dom: domain.id, vcpu, scope: page < 0 ? 'all' : 'page', page });
}

/**
 * Shadow paging's #PF handler: walk the guest's own tables (through the p2m, as the
 * hypervisor sees guest memory); if the guest maps the page, fill the shadow entry and let
 * the instruction run again; if not, the fault is the guest's and is reflected to it.
 */
function shadowPageFault(ctx: ExitContext): ExitAction {
  const { host, domain } = ctx;
  const cpu = ctx.x86.cpu;
  const linear = ctx.exit.qualification >>> 0;
  const isWrite = (ctx.exit.errorCode & 2) !== 0;
  let gpa = linear;
  let flags = PTE_WRITABLE | PTE_DIRTY;
  if ((cpu.cr0 & CR0_PG) !== 0) {
    const walk = guestWalk(p2mPort(ctx), cpu, linear, isWrite);
    if ('kind' in walk) {
      const fault = walk as Fault;
      if (fault.kind === 'exception') return resume(cloneCpu(cpu), { vector: fault.vector, errorCode: fault.errorCode ?? 0, cr2: fault.cr2 ?? linear });
      return resume(cloneCpu(cpu), gp());
    }
    gpa = walk.gpa;
    flags = walk.flags;
  }
  // Under shadow paging emulated MMIO has no frame: the fault on it is the trap.
  if (inMmioWindow(ctx, gpa)) return emulateMmio(ctx, p2mPort(ctx));
  const mfn = domain.p2m.get(Math.floor(gpa / PAGE_SIZE));
  if (mfn === undefined) return resume(cloneCpu(cpu), gp());
  host.emit('shadow.sync', { dom: domain.id, vcpu: ctx.vcpu, op: 'fill', page: linear >>> 12, mfn, flags: shadowFlags(flags, isWrite) });
  host.emit('tlb.flush', { dom: domain.id, vcpu: ctx.vcpu, scope: 'page', page: linear >>> 12 });
  return resume(cloneCpu(cpu));
}

/** Guest-physical memory as the hypervisor reaches it: through the p2m, decrypted by SMM. */
function p2mPort(ctx: ExitContext): WalkPort {
  return new P2mPort(ctx);
}

class P2mPort implements WalkPort {
  /** @param writes whether the walk may set the guest's accessed and dirty bits. */
  constructor(private readonly ctx: ExitContext, private readonly writes = true) {}

  read32(gpa: number): number | Fault {
    const mfn = this.frame(gpa);
    if (mfn === undefined) return notMapped(gpa);
    const plain = readFramePlain(this.ctx.host, this.ctx.pcpu, mfn);
    const o = gpa & (PAGE_SIZE - 1);
    return (plain[o] | (plain[o + 1] << 8) | (plain[o + 2] << 16) | (plain[o + 3] << 24)) >>> 0;
  }

  write32(gpa: number, value: number): Fault | undefined {
    const mfn = this.frame(gpa);
    if (mfn === undefined) return notMapped(gpa);
    if (!this.writes) return undefined;
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
    writeFrame(this.ctx.host, this.ctx.domain.id, this.ctx.pcpu, gpa, mfn, gpa & (PAGE_SIZE - 1), bytes);
    return undefined;
  }

  private frame(gpa: number): number | undefined {
    return this.ctx.domain.p2m.get(Math.floor(gpa / PAGE_SIZE));
  }
}

function notMapped(gpa: number): Fault {
  return { kind: 'exit', reason: ExitReason.EPT_VIOLATION, qualification: 0, gla: null, gpa };
}

