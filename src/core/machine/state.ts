/**
 * The machine state: everything `decide` needs to take the next step, and nothing else.
 *
 * It is plain data (objects, arrays, Maps, byte arrays) so that the same `evolve` can mutate
 * it in place in the live machine and inside immer's `produce` in the timeline. Memory pages
 * and guest programs are immutable values replaced on change, so snapshots share them.
 */
import type { DomainId, Gfn, Mfn, Profile, Tick } from '../../events/schema.ts';
import { NO_DOMAIN } from '../../events/schema.ts';
import type { CpuState } from '../hardware/cpu/cpu-state.ts';
import { initialIoState, type IoState } from '../hypervisor/io/io-state.ts';
import { seedPrng, type PrngState } from './prng.ts';
import { XEN_RESERVED_FRAMES, type GuestOp, type MachineConfig } from './scenario.ts';

/** A host frame's content as stored: ciphertext under SMM, plaintext in vanilla. */
export interface Page {
  bytes: Uint8Array;
  /** The domain whose data the frame holds (for the scrub-between-owners check). */
  writer: DomainId;
}

/**
 * Page contents that one live machine made with its own writes and has shared with nothing
 * since: the only page bytes ever written in place (see evolve's `live`). Everything else
 * that holds page bytes (checkpoints and their hash cache, clones, the timeline's states,
 * hydrated pages) treats them as values; whatever shares a state's pages takes them out of
 * this set first (sharePage), so the next write to them copies. Speed only: the bytes a
 * state holds are the same either way.
 */
const privatePages = new WeakSet<Uint8Array>();

export const isPrivatePage = (bytes: Uint8Array): boolean => privatePages.has(bytes);
export const makePagePrivate = (bytes: Uint8Array): void => void privatePages.add(bytes);
export const sharePage = (bytes: Uint8Array): void => void privatePages.delete(bytes);

/** One entry of SMM's page permission table. */
export interface PptEntry {
  owner: DomainId;
  rights: number;
}

export interface Vcpu {
  /** Index of the next operation in the vCPU's program (scripted guests). */
  pc: number;
  /** Remaining iterations per repeat slot (scripted guests). */
  loops: number[];
  /** The hardware vCPU of an x86 guest; null for a scripted one. */
  x86: X86Vcpu | null;
}

/** A cached translation: linear page -> host frame, with the combined permissions. */
export interface TlbEntry {
  mfn: Mfn;
  flags: number;
}

/** The VMCS exit-information fields of the last VM exit. */
export interface ExitInfo {
  reason: number;
  qualification: number;
  gla: number;
  gpa: number;
  length: number;
  /** VM-exit interruption information of an exception exit (-1: none). */
  vector: number;
  errorCode: number;
}

export interface X86Vcpu {
  /** The VMCS guest-state area. */
  cpu: CpuState;
  vpid: number;
  exit: ExitInfo;
  /** Between VM entry and VM exit: the guest is running. */
  inGuest: boolean;
  /** In HLT: descheduled until an interrupt is pending. */
  halted: boolean;
  /** The VM-entry interruption information: an event to inject at the next entry. */
  injection: { vector: number; errorCode: number; cr2: number } | null;
  /** The hardware TLB, tagged by this vCPU's VPID: linear page -> translation, oldest first. */
  tlb: Map<number, TlbEntry>;
  /** Shadow paging's shadow page table (the virtual TLB): linear page -> host frame. */
  shadow: Map<number, TlbEntry>;
  /**
   * The local APIC timer: the LVT timer register, the initial count (in ticks, retired
   * instructions), the tick the count runs out (-1: stopped) and whether its interrupt is pending.
   */
  lapic: { lvt: number; initialCount: number; deadline: number; pending: boolean };
  /** External interrupts (remapped MSIs) requested and not yet injected: vectors, ascending. */
  irr: number[];
}

/** An EPT leaf entry: the host frame and the low bits (R/W/X, memory type). */
export interface EptEntry {
  mfn: Mfn;
  bits: number;
}

/** The 4-level EPT as the model keeps it: PML4 -> PDPT -> PD -> PT, 512 entries each. */
export type EptTable = Map<number, Map<number, Map<number, Map<number, EptEntry>>>>;

export type DomainStatus = 'running' | 'dead';
export type GuestKind = 'scripted' | 'x86';
export type PagingMode = 'ept' | 'shadow';

export interface Domain {
  id: DomainId;
  name: string;
  status: DomainStatus;
  memoryKiB: number;
  maxPages: number;
  /** Xen's pseudo-physical map, gfn -> mfn. */
  p2m: Map<Gfn, Mfn>;
  vcpus: Vcpu[];
  /** One scripted program per vCPU (immutable, shared by snapshots). */
  programs: GuestOp[][];
  kind: GuestKind;
  /** How guest-physical memory is virtualised for an x86 guest. */
  paging: PagingMode;
  /** The EPT of an x86 guest under EPT (empty otherwise). */
  ept: EptTable;
}

/** What a physical CPU is running. */
export interface Pcpu {
  dom: DomainId;
  vcpu: number;
  quantumLeft: number;
}

export interface Canary {
  dom: DomainId;
  gpa: number;
  secret: Uint8Array;
}

export interface MachineState {
  /** The scenario as compiled; immutable for the whole run. */
  config: MachineConfig;
  profile: Profile;
  quantum: number;
  flaws: string[];
  booted: boolean;
  halted: boolean;
  tick: Tick;
  prng: PrngState;
  nextDomainId: DomainId;
  /** Frames given back, reused last-in first-out as Xen's heap tends to. */
  freeStack: Mfn[];
  /** Frames from here up have never been allocated. */
  nextFresh: Mfn;
  memory: Map<Mfn, Page>;
  /** SMM's page permission table (in vanilla: Xen's page ownership). */
  ppt: Map<Mfn, PptEntry>;
  /** Xen's machine-to-phys map. */
  m2p: Map<Mfn, { dom: DomainId; gfn: Gfn }>;
  /** SMM's key table: domain -> AES-256-XTS key. */
  keyTable: Map<DomainId, Uint8Array>;
  domains: Map<DomainId, Domain>;
  sched: {
    /** The pCPU that takes the next step. */
    turn: number;
    pcpus: Pcpu[];
    /** The domain whose key SMM holds live, per pCPU (the context-switch hook). */
    smmLive: DomainId[];
    /** The last vCPU picked, as dom * 256 + vcpu, for round robin. */
    cursor: number;
  };
  /** Index of the next dom0 action in config.dom0Actions. */
  dom0Next: number;
  /** Index of the next scenario input in config.inputs. */
  inputNext: number;
  canaries: Canary[];
  violations: number;
  /** Devices, VT-d and the network. */
  io: IoState;
}

export function initialState(config: MachineConfig): MachineState {
  return {
    config,
    profile: config.profile,
    quantum: config.quantum,
    flaws: [...config.flaws],
    booted: false,
    halted: false,
    tick: 0,
    prng: seedPrng(config.seed),
    nextDomainId: 0,
    freeStack: [],
    nextFresh: XEN_RESERVED_FRAMES,
    memory: new Map(),
    ppt: new Map(),
    m2p: new Map(),
    keyTable: new Map(),
    domains: new Map(),
    sched: {
      turn: 0,
      pcpus: Array.from({ length: config.pcpus }, () => ({ dom: NO_DOMAIN, vcpu: 0, quantumLeft: 0 })),
      smmLive: Array.from({ length: config.pcpus }, () => NO_DOMAIN),
      cursor: -1,
    },
    dom0Next: 0,
    inputNext: 0,
    canaries: [],
    violations: 0,
    io: initialIoState(config),
  };
}

export function freeFrameCount(state: MachineState): number {
  return state.freeStack.length + (state.config.frames - state.nextFresh);
}

/** A domain's name for messages ("alice", "dom0"), or "d<id>" when unknown. */
export function domainLabel(state: MachineState, dom: DomainId): string {
  return state.domains.get(dom)?.name ?? `d${dom}`;
}

/**
 * A working copy of a state that shares what is never changed in place: byte arrays (keys
 * and PCI configuration spaces are replaced on change, never written into; pages are shared
 * first, so that neither state writes them in place), the entries of the frame tables
 * (memory, page permission table, m2p: evolve replaces an entry, never edits one) and the
 * scenario. Everything else is copied, so the two states go their own
 * ways. For running many machines from one prepared state (the fuzzer) without building it
 * again each time.
 */
export function cloneState(state: MachineState): MachineState {
  const { config, memory, ppt, m2p, ...rest } = state;
  for (const page of memory.values()) sharePage(page.bytes);
  return { ...(cloneValue(rest) as Omit<MachineState, 'config' | 'memory' | 'ppt' | 'm2p'>), config, memory: new Map(memory), ppt: new Map(ppt), m2p: new Map(m2p) };
}

function cloneValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (value instanceof Map) {
    const copy = new Map();
    for (const [k, v] of value) copy.set(k, cloneValue(v));
    return copy;
  }
  if (Array.isArray(value)) return value.map(cloneValue);
  const copy: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) copy[key] = cloneValue(v);
  return copy;
}
