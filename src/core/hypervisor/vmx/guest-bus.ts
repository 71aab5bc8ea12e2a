/**
 * The memory bus of an x86 vCPU: linear addresses -> (the guest's paging) -> guest-physical ->
 * (EPT, or the shadow page table) -> host frame -> SMM. The TLB caches the whole chain.
 *
 * What an instruction does to memory is held back until the machine knows the outcome: its
 * stores are committed only if it retires (a faulting instruction leaves memory as it was),
 * while TLB fills and the accessed/dirty bits a page walk sets are committed either way, as
 * the processor does. Everything is committed after the step's opening event.
 */
import type { CpuBus, Fault } from '../../hardware/cpu/bus.ts';
import { ExitReason } from '../../hardware/cpu/outcomes.ts';
import { EPT_WALK_REFS, eptTranslate, type EptAccess } from '../../hardware/paging/ept.ts';
import { CR0_PG, guestWalk, PTE_DIRTY, PTE_WRITABLE, type WalkPort } from '../../hardware/paging/guest-walk.ts';
import { PAGE_SIZE } from '../config.ts';
import { readFramePlain, writeFrame } from '../memory/guest-memory.ts';
import type { Domain, Host, TlbEntry, X86Vcpu } from '../state.ts';

/** TLB entries a vCPU holds before the oldest is evicted. */
export const TLB_ENTRIES = 64;
const { EXCEPTION_NMI: EXIT_EXCEPTION_NMI, EPT_VIOLATION: EXIT_EPT_VIOLATION, EPT_MISCONFIG: EXIT_EPT_MISCONFIG } = ExitReason;

export interface TlbFill {
  page: number;
  mfn: number;
  flags: number;
  refs: number;
}

interface PhysicalWrite {
  gpa: number;
  mfn: number;
  offset: number;
  bytes: Uint8Array;
}

const isFault = (value: unknown): value is Fault => typeof value === 'object' && value !== null && 'kind' in value;

export class GuestBus implements CpuBus {
  /** Fetched bytes change only with a forgetDecodes (a private page written in place), never within a step. */
  readonly immutableFetch = true;
  // Allocated when first needed: most instructions fill nothing and store nothing.
  private fills: TlbFill[] | null = null;
  private walkWrites: PhysicalWrite[] | null = null;
  /** Instruction stores by linear byte address, in program order. */
  private stores: Map<number, { mfn: number; value: number }> | null = null;
  private filled: Map<number, TlbEntry> | null = null;
  private readonly x86: X86Vcpu;
  /** The last shadow-table miss: the #PF that the exception bitmap turned into a VM exit. */
  shadowFault: { linear: number; errorCode: number } | null = null;

  constructor(private readonly host: Host, private readonly domain: Domain, private readonly vcpu: number, private readonly pcpu: number) {
    this.x86 = domain.vcpus[vcpu].x86!;
  }

  // ---- translation ---------------------------------------------------------------------

  /** The host frame for a linear page, or the fault the access takes. */
  translate(linear: number, access: EptAccess): number | Fault {
    const page = linear >>> 12;
    const cached = this.filled?.get(page) ?? this.x86.tlb.get(page);
    if (cached !== undefined && (access !== 'write' || (cached.flags & (PTE_WRITABLE | PTE_DIRTY)) === (PTE_WRITABLE | PTE_DIRTY))) {
      return cached.mfn;
    }
    const fill = this.domain.paging === 'ept' ? this.walkEpt(linear, access) : this.walkShadow(linear, access);
    if (isFault(fill)) return fill;
    (this.filled ??= new Map()).set(page, { mfn: fill.mfn, flags: fill.flags });
    (this.fills ??= []).push(fill);
    return fill.mfn;
  }

  /** Hardware's two-dimensional walk: the guest's tables, each entry reached through EPT. */
  private walkEpt(linear: number, access: EptAccess): TlbFill | Fault {
    const cpu = this.x86.cpu;
    const paging = (cpu.cr0 & CR0_PG) !== 0;
    let gpa = linear >>> 0;
    let flags = PTE_WRITABLE | PTE_DIRTY;
    let refs = EPT_WALK_REFS;
    if (paging) {
      const walk = guestWalk(this.eptPort(linear), cpu, linear, access === 'write');
      if (isFault(walk)) return walk;
      gpa = walk.gpa;
      flags = walk.flags;
      refs += walk.refs * (EPT_WALK_REFS + 1);
    }
    const result = eptTranslate(this.domain.ept, Math.floor(gpa / PAGE_SIZE), access, true, paging);
    if (result.kind === 'misconfig') return this.exit(EXIT_EPT_MISCONFIG, 0, linear, gpa);
    if (result.kind === 'violation') return this.exit(EXIT_EPT_VIOLATION, result.qualification, paging ? linear : null, gpa);
    return { page: linear >>> 12, mfn: result.mfn, flags, refs };
  }

  private exit(reason: number, qualification: number, gla: number | null, gpa: number): Fault {
    return { kind: 'exit', reason, qualification, gla: gla === null ? null : gla >>> 0, gpa: gpa >>> 0 };
  }

  /** The guest's paging structures as the walker reads them: guest-physical through EPT. */
  private eptPort(linear: number): WalkPort {
    return new EptPort(this, linear);
  }

  /** A paging structure's frame through EPT (no A/D tracking), or the exit a miss causes. */
  eptFrame(gpa: number, access: EptAccess, linear: number): number | Fault {
    const r = eptTranslate(this.domain.ept, Math.floor(gpa / PAGE_SIZE), access, false, true);
    if (r.kind === 'misconfig') return this.exit(EXIT_EPT_MISCONFIG, 0, linear, gpa);
    if (r.kind === 'violation') return this.exit(EXIT_EPT_VIOLATION, r.qualification, linear, gpa);
    return r.mfn;
  }

  /**
   * Under shadow paging the processor walks the hypervisor's shadow table: a miss is a #PF,
   * which the exception bitmap turns into a VM exit (reason 0) for the shadow code to
   * resolve, whatever the guest was doing, delivering an event included.
   */
  private walkShadow(linear: number, access: EptAccess): TlbFill | Fault {
    const entry = this.x86.shadow.get(linear >>> 12);
    if (entry === undefined || (access === 'write' && (entry.flags & PTE_WRITABLE) === 0)) {
      // The exit's interruption information: the #PF the shadow table raised.
      this.shadowFault = { linear: linear >>> 0, errorCode: (entry ? 1 : 0) | (access === 'write' ? 2 : 0) };
      return { kind: 'exit', reason: EXIT_EXCEPTION_NMI, qualification: linear >>> 0, gla: linear >>> 0, gpa: null };
    }
    return { page: linear >>> 12, mfn: entry.mfn, flags: entry.flags, refs: 2 };
  }

  // ---- physical access (page walks, A/D bits) -------------------------------------------

  physicalRead32(mfn: number, gpa: number): number {
    const offset = gpa & (PAGE_SIZE - 1);
    const pending = this.walkWrites?.findLast((w) => w.mfn === mfn && w.offset === offset);
    if (pending) return Buffer.from(pending.bytes).readUInt32LE(0);
    const plain = readFramePlain(this.host, this.pcpu, mfn);
    return (plain[offset] | (plain[offset + 1] << 8) | (plain[offset + 2] << 16) | (plain[offset + 3] << 24)) >>> 0;
  }

  physicalWrite32(gpa: number, mfn: number, value: number): void {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
    (this.walkWrites ??= []).push({ gpa, mfn, offset: gpa & (PAGE_SIZE - 1), bytes });
  }

  // ---- the CpuBus the interpreter sees ---------------------------------------------------

  /** The plaintext of the page holding `linear` (cached; changed in place only with a forgetDecodes). */
  fetchPage(linear: number): Uint8Array | Fault {
    const mfn = this.translate(linear, 'fetch');
    if (isFault(mfn)) return mfn;
    return readFramePlain(this.host, this.pcpu, mfn);
  }

  /** Instruction bytes straight from the page's plaintext (a view, not a copy). */
  fetch(linear: number, count: number): Uint8Array | Fault {
    const offset = linear & (PAGE_SIZE - 1);
    const mfn = this.translate(linear, 'fetch');
    if (isFault(mfn)) return mfn;
    const first = readFramePlain(this.host, this.pcpu, mfn).subarray(offset, Math.min(PAGE_SIZE, offset + count));
    if (first.length === count) return first;
    // The instruction may run into the next page; if that page faults, the decoder will ask.
    const next = this.translate((linear + first.length) >>> 0, 'fetch');
    if (isFault(next)) return first;
    const out = new Uint8Array(count);
    out.set(first);
    out.set(readFramePlain(this.host, this.pcpu, next).subarray(0, count - first.length), first.length);
    return out;
  }

  read(linear: number, bytes: 1 | 2 | 4): number | Fault {
    const offset = linear & (PAGE_SIZE - 1);
    if (this.stores === null && offset + bytes <= PAGE_SIZE) {
      const mfn = this.translate(linear, 'read');
      if (isFault(mfn)) return mfn;
      const plain = readFramePlain(this.host, this.pcpu, mfn);
      let value = 0;
      for (let i = bytes - 1; i >= 0; i--) value = value * 256 + plain[offset + i];
      return value;
    }
    let value = 0;
    for (let i = 0; i < bytes; i++) {
      const byte = this.loadByte((linear + i) >>> 0, 'read');
      if (isFault(byte)) return byte;
      value += byte * 2 ** (8 * i);
    }
    return value;
  }

  write(linear: number, bytes: 1 | 2 | 4, value: number): Fault | undefined {
    // Translate every byte first, so a store that faults half way stores nothing.
    const frames: number[] = [];
    for (let i = 0; i < bytes; i++) {
      const mfn = this.translate((linear + i) >>> 0, 'write');
      if (isFault(mfn)) return mfn;
      frames.push(mfn);
    }
    const stores = (this.stores ??= new Map());
    for (let i = 0; i < bytes; i++) {
      stores.set((linear + i) >>> 0, { mfn: frames[i], value: Math.floor(value / 2 ** (8 * i)) & 0xff });
    }
    return undefined;
  }

  private loadByte(linear: number, access: EptAccess): number | Fault {
    const stored = this.stores?.get(linear);
    if (stored !== undefined) return stored.value;
    const mfn = this.translate(linear, access);
    if (isFault(mfn)) return mfn;
    return readFramePlain(this.host, this.pcpu, mfn)[linear & (PAGE_SIZE - 1)];
  }

  // ---- commit ----------------------------------------------------------------------------

  /** Forgets the stores of an instruction that faulted (its page-walk effects stay). */
  discardStores(): void {
    this.stores = null;
  }

  /** Emits what the step did to the TLB and memory; stores only if the instruction retired. */
  commit(retired: boolean): void {
    const { host, domain, vcpu } = this;
    if (this.fills !== null) {
      for (const fill of this.fills) {
        const tlb = this.x86.tlb;
        const evicted = tlb.size >= TLB_ENTRIES && !tlb.has(fill.page) ? tlb.keys().next().value! : -1;
        host.emit('tlb.fill', { dom: domain.id, vcpu, page: fill.page, mfn: fill.mfn, flags: fill.flags, evicted, refs: fill.refs });
      }
    }
    if (this.walkWrites !== null) for (const w of this.walkWrites) writeFrame(host, domain.id, this.pcpu, w.gpa, w.mfn, w.offset, w.bytes);
    if (retired && this.stores !== null) for (const run of this.storeRuns(this.stores)) writeFrame(host, domain.id, this.pcpu, run.gpa, run.mfn, run.offset, run.bytes);
  }

  /** Buffered stores grouped into contiguous runs within one frame. */
  private storeRuns(stores: Map<number, { mfn: number; value: number }>): PhysicalWrite[] {
    const runs: PhysicalWrite[] = [];
    const addresses = [...stores.keys()].sort((a, b) => a - b);
    let current: { start: number; mfn: number; bytes: number[] } | undefined;
    for (const address of addresses) {
      const s = stores.get(address)!;
      if (current && s.mfn === current.mfn && address === current.start + current.bytes.length) {
        current.bytes.push(s.value);
        continue;
      }
      if (current) runs.push(this.toRun(current));
      current = { start: address, mfn: s.mfn, bytes: [s.value] };
    }
    if (current) runs.push(this.toRun(current));
    return runs;
  }

  /** A run of stores as a physical write; its gpa comes from Xen's machine-to-phys map. */
  private toRun(r: { start: number; mfn: number; bytes: number[] }): PhysicalWrite {
    const offset = r.start & (PAGE_SIZE - 1);
    const gfn = this.host.state.m2p.get(r.mfn)?.gfn;
    return { gpa: gfn === undefined ? -1 : gfn * PAGE_SIZE + offset, mfn: r.mfn, offset, bytes: Uint8Array.from(r.bytes) };
  }
}

/** A class rather than closures: a port is made per page walk. */
class EptPort implements WalkPort {
  constructor(private readonly bus: GuestBus, private readonly linear: number) {}

  read32(gpa: number): number | Fault {
    const mfn = this.bus.eptFrame(gpa, 'read', this.linear);
    return isFault(mfn) ? mfn : this.bus.physicalRead32(mfn, gpa);
  }

  write32(gpa: number, value: number): Fault | undefined {
    const mfn = this.bus.eptFrame(gpa, 'write', this.linear);
    if (isFault(mfn)) return mfn;
    this.bus.physicalWrite32(gpa, mfn, value);
    return undefined;
  }
}
