/**
 * What the hypervisor keeps and reads: host frames with their owners and keys (SMM), domains
 * with their p2m, EPT and vCPUs, the scheduler's pCPUs, and the I/O state. Plain data
 * (objects, arrays, Maps, byte arrays), so that one fold can mutate it in place in the live
 * machine and inside immer's `produce` in the timeline. The machine layer's state extends it
 * with what only the machine keeps (its PRNG, the scenario's cursors, the invariants' marks).
 *
 * The hypervisor's code works with a Host: this state and the emitter its decisions go
 * through. Every decision is an event, applied the moment it is emitted, so the next line of
 * a decision already sees its effect.
 */
import { assert } from '../../events/errors.ts';
import type { DomainId, Event, EventFields, EventKind, Gfn, Mfn, Profile, Tick } from '../../events/schema.ts';
import type { CpuState } from '../hardware/cpu/cpu-state.ts';
import type { EptTable } from '../hardware/paging/ept.ts';
import type { PagingMode } from '../hardware/vmx/controls.ts';
import type { Lapic } from '../hardware/vmx/lapic.ts';
import type { GuestOp, MachineConfig } from './config.ts';
import type { IoState } from './io/io-state.ts';

export type { EptEntry, EptTable } from '../hardware/paging/ept.ts';
export type { PagingMode };

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
   * The shadows Xen keeps for address spaces not running now, by the frame number of their
   * page directory (the guest's CR3), least recently used first.
   */
  shadowCache: Map<number, Map<number, TlbEntry>>;
  /** The local APIC timer. */
  lapic: Lapic;
  /** External interrupts (remapped MSIs) requested and not yet injected: vectors, ascending. */
  irr: number[];
}

export type DomainStatus = 'running' | 'dead';
export type GuestKind = 'scripted' | 'x86';

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

export interface HostState {
  /** The scenario as compiled; immutable for the whole run. */
  config: MachineConfig;
  profile: Profile;
  quantum: number;
  flaws: string[];
  tick: Tick;
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
  /** Devices, VT-d and the network. */
  io: IoState;
}

/** A vCPU by domain and index. */
export interface VcpuRef {
  dom: DomainId;
  vcpu: number;
}

/**
 * The host as the hypervisor works with it: the state it reads, and the emitter each of its
 * decisions goes through (the event is applied at once). The machine is one.
 */
export interface Host {
  readonly state: HostState;
  emit<K extends EventKind>(kind: K, fields: EventFields<K>): void;
  /** An event built by the caller (the hottest kinds): what makeEvent would build, in schema order. */
  emitEvent(event: Event): void;
}

export function freeFrameCount(state: HostState): number {
  return state.freeStack.length + (state.config.frames - state.nextFresh);
}

/** A domain's name for messages ("alice", "dom0"), or "d<id>" when unknown. */
export function domainLabel(state: HostState, dom: DomainId): string {
  return state.domains.get(dom)?.name ?? `d${dom}`;
}

/** The domain an event names; the event names one that exists, or the fold is wrong. */
export function domainOf(state: HostState, dom: DomainId): Domain {
  const domain = state.domains.get(dom);
  assert(domain !== undefined, () => `event names domain ${dom}, which does not exist`);
  return domain;
}

/** The x86 vCPU an event names. */
export function x86Of(state: HostState, dom: DomainId, vcpu: number): X86Vcpu {
  const x86 = domainOf(state, dom).vcpus[vcpu]?.x86;
  assert(x86 !== undefined && x86 !== null, () => `event names x86 vCPU ${dom}.${vcpu}, which does not exist`);
  return x86;
}
