/**
 * The machine's configuration as the scenario compiler hands it over: what the hypervisor
 * is built with (domains and their guests, dom0's actions, the network) and what its scripted
 * guests run. Immutable for a whole run; the machine layer compiles it from a scenario file.
 */
import type { HYPERCALL_NAMES, Profile } from '../../events/schema.ts';
import type { SecurityRule } from '../hardware/nic/switch.ts';
import type { PagingMode } from '../hardware/vmx/controls.ts';
import type { FlawName } from './flaws.ts';

export type { SecurityRule };

/** dom0's actions a scenario (or an input) can ask for. */
export const DOM0_OPS = ['foreign_read', 'create_domain', 'destroy_domain', 'assign_vf', 'deassign_vf', 'crash_backend'] as const;

export const PAGE_SIZE = 4096;
/** Frames below this belong to Xen itself and are never given to a domain (1 MiB). */
export const XEN_RESERVED_FRAMES = 256;

/** A compiled scripted-guest operation. `repeat`/`end` are loop control, free of time. */
export type GuestOp =
  | { op: 'write'; gpa: number; bytes: Uint8Array }
  | { op: 'read'; gpa: number; len: number }
  | { op: 'canary'; gpa: number; secret: Uint8Array | null; len: number }
  | { op: 'scan' }
  | { op: 'hypercall'; call: (typeof HYPERCALL_NAMES)[number]; args: number[]; text: string }
  | { op: 'yield' }
  | { op: 'exit' }
  /** The scripted NIC driver (machine/guests/scripted-nic-driver.ts): set the VF up, send a frame, give an rx buffer, write a register. */
  | { op: 'nic_setup' }
  | { op: 'nic_tx'; frame: Uint8Array; buffer: number | null }
  | { op: 'nic_rx'; buffer: number }
  | { op: 'mmio'; bar: number; offset: number; value: number }
  | { op: 'repeat'; slot: number; times: number; end: number }
  | { op: 'end'; slot: number; start: number };

export interface Dom0Action {
  at: number;
  op: (typeof DOM0_OPS)[number];
  domain: string;
  gfn: number;
  offset: number;
  len: number;
}

/** An x86 guest's image, assembled from its source when the scenario is read. */
export interface GuestImage {
  /** Guest-physical address of the first byte (the source's org). */
  load: number;
  bytes: Uint8Array;
  entry: number;
  /** Initial ESP. */
  stack: number;
}

export interface DomainSpec {
  name: string;
  memoryKiB: number;
  maxMemoryKiB: number;
  vcpus: number;
  start: number;
  /** One program per vCPU (vCPUs beyond the list run nothing); empty for an x86 guest. */
  programs: GuestOp[][];
  /** The x86 image, or null for a scripted guest. */
  image: GuestImage | null;
  paging: PagingMode;
  /** The domain's network port: a VF of the NIC (secure) or dom0's backend (vanilla); null: none. */
  nic: NicSpec | null;
}

export interface NicSpec {
  mac: string;
  /** Port VLAN (0: untagged). */
  vlan: number;
  ip: string;
  spoofcheck: boolean;
}

export interface WireFrame {
  at: number;
  frame: Uint8Array;
}

export interface NetworkConfig {
  /** VFs the PF driver enables at boot. */
  vfs: number;
  securityGroups: SecurityRule[];
  /** Frames arriving from the external wire, in tick order. */
  wire: WireFrame[];
}

export interface InputSpec {
  at: number;
  key: string;
  value: string;
}

export interface MachineConfig {
  seed: string;
  profile: Profile;
  frames: number;
  pcpus: number;
  /** Operations a scripted vCPU runs per turn. */
  quantum: number;
  /** Instructions an x86 vCPU runs per turn (the scheduler's time slice). */
  timeslice: number;
  flaws: FlawName[];
  dom0MemoryKiB: number;
  dom0Actions: Dom0Action[];
  domains: DomainSpec[];
  inputs: InputSpec[];
  network: NetworkConfig;
}
