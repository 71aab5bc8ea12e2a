/**
 * The event union, schema v2 (v2 added shadow.switch): every fact the machine can state about
 * one step.
 *
 * Events carry their effects (bytes as stored, table entries as written), so folding a
 * recording never re-executes the machine. Field order is part of the schema: the codec
 * stores one record structure per kind, in the order given by EVENT_FIELDS.
 */

/** Bumped whenever a kind, a field or a field's meaning changes. */
export const SCHEMA_VERSION = 2;

/** Host frame number (machine frame, Xen's mfn). -1 means "none". */
export type Mfn = number;
/** Guest frame number (pseudo-physical, Xen's gfn/pfn). */
export type Gfn = number;
/** Guest-physical address. */
export type Gpa = number;
/** Domain id; dom0 is 0, -1 means "none". */
export type DomainId = number;
/** Position of an event in a run, counted from 0. */
export type Seq = number;
/** Virtual time: retired guest operations (later: instructions) plus idle jumps. */
export type Tick = number;

export type Profile = 'secure' | 'vanilla';
export const PROFILES: readonly Profile[] = ['secure', 'vanilla'];

/** Page permission table rights, as bits. */
export const RIGHT_READ = 1;
export const RIGHT_WRITE = 2;

export const NO_DOMAIN = -1;
export const NO_FRAME = -1;

/** Scripted guest operations, stored in `guest.op` as a small number. */
export const GUEST_OP_NAMES = [
  'write', 'read', 'canary', 'scan', 'hypercall', 'yield', 'exit', 'nic_setup', 'nic_tx', 'nic_rx', 'mmio',
] as const;
export type GuestOpName = (typeof GUEST_OP_NAMES)[number];

/** Hypercalls a guest may make (Xen names). */
export const HYPERCALL_NAMES = [
  'populate_physmap', 'decrease_reservation', 'console_write', 'sched_yield', 'add_to_physmap',
] as const;
export type HypercallName = (typeof HYPERCALL_NAMES)[number];

export const INVARIANTS = [
  'single-owner',
  'no-aliasing',
  'scrub-between-owners',
  'canary-confined',
  'dom0-no-plaintext',
  'dma-confined',
  'no-stale-translation',
  'irq-confined',
  'net-isolation',
  'frame-key-owner',
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

interface Shape {
  /** A step of the machine: the first event of every step is an opener. */
  'machine.boot': { profile: Profile; frames: number; pcpus: number; seed: string };
  'guest.op': { dom: DomainId; vcpu: number; pcpu: number; pc: number; op: number; next: number; loops: number[] };
  'sched.switch': { pcpu: number; fromDom: DomainId; fromVcpu: number; toDom: DomainId; toVcpu: number; smmLive: DomainId; quantum: number };
  'sched.idle': { pcpu: number; ticks: number };
  'dom0.op': { index: number; op: string; target: DomainId; result: number };
  /** `index` is the scenario input's position, or -1 for a modification from outside (a fork). */
  input: { index: number; key: string; value: string };
  'machine.halt': { reason: string };
  /** One retired instruction: EIP before and after, and the registers it changed. */
  'cpu.step': { dom: DomainId; vcpu: number; pcpu: number; eip: number; next: number; delta: number[] };
  /** An instruction faulted and the exception was delivered through the guest's IDT. */
  exception: { dom: DomainId; vcpu: number; pcpu: number; vector: number; errorCode: number; cr2: number; delta: number[] };
  /**
   * A VM exit: the SDM's basic exit reason, exit qualification, guest-linear and
   * guest-physical address (-1: not valid), instruction length, and for an exception exit
   * the interruption information (vector and error code, -1: none).
   */
  'vm.exit': { dom: DomainId; vcpu: number; pcpu: number; reason: number; qualification: number; gla: number; gpa: number; length: number; vector: number; errorCode: number };

  /** Effects and observations inside a step. */
  'mem.write': { dom: DomainId; gpa: Gpa; mfn: Mfn; offset: number; stored: Uint8Array };
  'mem.read': { dom: DomainId; gpa: Gpa; mfn: Mfn; offset: number; stored: Uint8Array; value: Uint8Array };
  'mem.encrypt': { dom: DomainId; mfn: Mfn; offset: number; len: number; keyDom: DomainId };
  'mem.decrypt': { dom: DomainId; mfn: Mfn; offset: number; len: number; keyDom: DomainId };
  'mem.fault': { dom: DomainId; gpa: Gpa; mfn: Mfn; access: 'r' | 'w'; reason: string };
  'p2m.update': { dom: DomainId; gfn: Gfn; mfn: Mfn; prevMfn: Mfn };
  'smm.ppt.update': { mfn: Mfn; owner: DomainId; rights: number; prevOwner: DomainId };
  'smm.scrub': { mfn: Mfn; prevOwner: DomainId };
  'smm.key.assign': { dom: DomainId; key: Uint8Array };
  'smm.key.revoke': { dom: DomainId };
  'domain.create': { dom: DomainId; name: string; memoryKiB: number; vcpus: number };
  'domain.destroy': { dom: DomainId; reason: string };
  hypercall: { dom: DomainId; vcpu: number; op: string; args: number[]; text: string; result: number };
  /** `prng` is the generator's state after drawing the secret ([] when the scenario gave it). */
  'guest.canary': { dom: DomainId; gpa: Gpa; secret: Uint8Array; prng: number[] };
  'dom0.foreign_read': { target: DomainId; gfn: Gfn; mfn: Mfn; offset: number; value: Uint8Array };
  violation: { invariant: InvariantName; dom: DomainId; mfn: Mfn; detail: string };
  /** VM entry (a step of its own): the event injected (-1: none) and what delivering it changed. */
  'vm.entry': { dom: DomainId; vcpu: number; delta: number[]; inject: number; errorCode: number };
  /** The vCPU executed HLT: EIP moves past it and the vCPU waits for an interrupt. */
  'vcpu.halt': { dom: DomainId; vcpu: number; delta: number[] };
  /** A TLB miss filled: linear page -> host frame, with the memory references the walk took. */
  'tlb.fill': { dom: DomainId; vcpu: number; page: number; mfn: Mfn; flags: number; evicted: number; refs: number };
  /** scope: 'all' (CR3 load, VPID flush), 'page' (INVLPG) or 'domain' (INVEPT after a p2m change). */
  'tlb.flush': { dom: DomainId; vcpu: number; scope: string; page: number };
  /** An EPT leaf entry written: mfn -1 removes it; bits are the entry's low bits (R/W/X, memory type). */
  'ept.update': { dom: DomainId; gfn: Gfn; mfn: Mfn; bits: number };
  /**
   * The shadow page table (virtual TLB): op 'fill' adds page -> mfn, 'flush' drops one page or
   * (page -1) all of it, with the shadows kept for other address spaces.
   */
  'shadow.sync': { dom: DomainId; vcpu: number; op: string; page: number; mfn: Mfn; flags: number };
  /**
   * MOV to CR3 under shadow paging: the current shadow is kept under its page directory
   * (`save`, a frame number of the guest's CR3; -1: not kept), the one kept for the incoming
   * page directory (`restore`) becomes current (empty if none was kept), `evict` is dropped
   * to make room (-1: none); `refs` is what resynchronising the restored shadow against the
   * guest's tables cost, in paging-structure references.
   */
  'shadow.switch': { dom: DomainId; vcpu: number; save: number; restore: number; evict: number; refs: number };
  /** Port I/O emulated by the hypervisor. */
  io: { dom: DomainId; vcpu: number; port: number; size: number; out: boolean; value: number };
  /** The vCPU's local APIC timer: LVT timer register, initial count, the tick it runs out (-1: stopped), interrupt pending. */
  'lapic.timer': { dom: DomainId; vcpu: number; lvt: number; initialCount: number; deadline: number; pending: boolean };
  /** The hypervisor writes the VMCS: guest-state changes (delta) and the event to inject at the next entry (-1: none). */
  'vmcs.write': { dom: DomainId; vcpu: number; delta: number[]; inject: number; errorCode: number; cr2: number };

  /**
   * I/O (devices, VT-d, the network). `dom` is who acted: a guest through its virtual PCI
   * bus, or 0 for dom0 and Xen. A `bdf` is a PCI routing id (bus << 8 | device << 3 | fn).
   */
  /** A configuration cycle: read (value as returned) or write, and whether a function claimed it. */
  'pci.cfg': { dom: DomainId; bdf: number; offset: number; size: number; write: boolean; value: number; present: boolean };
  /** A BAR access (MMIO emulated on an EPT misconfiguration, or the device model's own). */
  'pci.mmio': { dom: DomainId; bdf: number; bar: number; offset: number; size: number; write: boolean; value: number };
  /**
   * Xen programs the IOMMU: 64-bit table words written in its own frames (`words` as
   * [hpa, low 32, high 32] triples), table frames taken and given back, and the unit's
   * effects of the registers written or queued (`effects`: VtdEffect[] as JSON, "" for none).
   */
  'vtd.op': { op: string; sid: number; did: number; alloc: number[]; free: number[]; words: number[]; effects: string };
  /**
   * A DMA request of a device (source id `sid`) at `iova`: the host address it reached
   * (-1: none), the VT-d fault reason (0: translated), the domain the device is assigned to,
   * what the unit cached or recorded (`effects`), and the bytes as the device saw them.
   * A write's memory effect follows as mem.write events.
   */
  'dma.request': { sid: number; dom: DomainId; iova: number; len: number; write: boolean; hpa: number; fault: number; effects: string; data: Uint8Array };
  /**
   * An interrupt request (an MSI, or any DMA write to 0xFEEx_xxxx): remapped through the
   * IRTE `index` (-1: compatibility format) to a vector for a vCPU, or blocked with an
   * interrupt-remapping fault reason (0x20-0x26; 0: delivered).
   */
  msi: { sid: number; address: number; data: number; index: number; fault: number; dom: DomainId; vcpu: number; vector: number; effects: string };
  /** The PF driver configures a VF: assigned to `dom` (-1: free), forced MAC, port VLAN, spoof check. */
  'nic.vf': { vf: number; bdf: number; dom: DomainId; mac: string; vlan: number; spoofcheck: boolean };
  /** The device updates one of its own registers (a ring head, the interrupt cause). */
  'nic.reg': { vf: number; reg: string; value: number };
  /**
   * A frame at a point of the network: `at` is where (vfN.tx, vfN.rx, switch, wire.in,
   * wire.out, siom.tx, siom.rx, netback.tx, netback.rx), `verdict` is "ok" or why it was dropped.
   */
  'net.frame': { at: string; dom: DomainId; vlan: number; verdict: string; frame: Uint8Array };
  /** SIOM, the paper's I/O bus: a frame enters or leaves a domain's tx/rx buffer, tagged with its domain. */
  'siom.buffer': { dom: DomainId; dir: string; op: string; tag: DomainId; len: number };
  /** dom0's netback copies a guest's packet through a grant: dom0 holds these bytes. */
  'netback.copy': { dom: DomainId; dir: string; gfn: Gfn; offset: number; data: Uint8Array };
  /** dom0's network backend goes up or down (a dom0 fault stops every guest's I/O). */
  'netback.state': { up: boolean; reason: string };
  /** A frame arrives from the external wire (scenario input `index`; a step of its own). */
  'wire.rx': { index: number; frame: Uint8Array };
}

export type EventKind = keyof Shape;
export type EventOf<K extends EventKind> = { kind: K } & Shape[K];
export type Event = { [K in EventKind]: EventOf<K> }[EventKind];
export type EventFields<K extends EventKind> = Shape[K];

/**
 * Field order per kind. The order of kinds is the storage code of each kind and must only
 * ever grow at the end (with a schema bump when a meaning changes).
 */
export const EVENT_FIELDS: { readonly [K in EventKind]: readonly (keyof Shape[K])[] } = {
  'guest.op': ['dom', 'vcpu', 'pcpu', 'pc', 'op', 'next', 'loops'],
  'mem.write': ['dom', 'gpa', 'mfn', 'offset', 'stored'],
  'mem.read': ['dom', 'gpa', 'mfn', 'offset', 'stored', 'value'],
  'mem.encrypt': ['dom', 'mfn', 'offset', 'len', 'keyDom'],
  'mem.decrypt': ['dom', 'mfn', 'offset', 'len', 'keyDom'],
  'sched.switch': ['pcpu', 'fromDom', 'fromVcpu', 'toDom', 'toVcpu', 'smmLive', 'quantum'],
  'sched.idle': ['pcpu', 'ticks'],
  hypercall: ['dom', 'vcpu', 'op', 'args', 'text', 'result'],
  'p2m.update': ['dom', 'gfn', 'mfn', 'prevMfn'],
  'smm.ppt.update': ['mfn', 'owner', 'rights', 'prevOwner'],
  'smm.scrub': ['mfn', 'prevOwner'],
  'mem.fault': ['dom', 'gpa', 'mfn', 'access', 'reason'],
  'dom0.op': ['index', 'op', 'target', 'result'],
  'dom0.foreign_read': ['target', 'gfn', 'mfn', 'offset', 'value'],
  'guest.canary': ['dom', 'gpa', 'secret', 'prng'],
  'smm.key.assign': ['dom', 'key'],
  'smm.key.revoke': ['dom'],
  'domain.create': ['dom', 'name', 'memoryKiB', 'vcpus'],
  'domain.destroy': ['dom', 'reason'],
  violation: ['invariant', 'dom', 'mfn', 'detail'],
  input: ['index', 'key', 'value'],
  'machine.boot': ['profile', 'frames', 'pcpus', 'seed'],
  'machine.halt': ['reason'],
  'cpu.step': ['dom', 'vcpu', 'pcpu', 'eip', 'next', 'delta'],
  exception: ['dom', 'vcpu', 'pcpu', 'vector', 'errorCode', 'cr2', 'delta'],
  'vm.exit': ['dom', 'vcpu', 'pcpu', 'reason', 'qualification', 'gla', 'gpa', 'length', 'vector', 'errorCode'],
  'vm.entry': ['dom', 'vcpu', 'delta', 'inject', 'errorCode'],
  'vcpu.halt': ['dom', 'vcpu', 'delta'],
  'tlb.fill': ['dom', 'vcpu', 'page', 'mfn', 'flags', 'evicted', 'refs'],
  'tlb.flush': ['dom', 'vcpu', 'scope', 'page'],
  'ept.update': ['dom', 'gfn', 'mfn', 'bits'],
  'shadow.sync': ['dom', 'vcpu', 'op', 'page', 'mfn', 'flags'],
  io: ['dom', 'vcpu', 'port', 'size', 'out', 'value'],
  'lapic.timer': ['dom', 'vcpu', 'lvt', 'initialCount', 'deadline', 'pending'],
  'vmcs.write': ['dom', 'vcpu', 'delta', 'inject', 'errorCode', 'cr2'],
  'pci.cfg': ['dom', 'bdf', 'offset', 'size', 'write', 'value', 'present'],
  'pci.mmio': ['dom', 'bdf', 'bar', 'offset', 'size', 'write', 'value'],
  'vtd.op': ['op', 'sid', 'did', 'alloc', 'free', 'words', 'effects'],
  'dma.request': ['sid', 'dom', 'iova', 'len', 'write', 'hpa', 'fault', 'effects', 'data'],
  msi: ['sid', 'address', 'data', 'index', 'fault', 'dom', 'vcpu', 'vector', 'effects'],
  'nic.vf': ['vf', 'bdf', 'dom', 'mac', 'vlan', 'spoofcheck'],
  'nic.reg': ['vf', 'reg', 'value'],
  'net.frame': ['at', 'dom', 'vlan', 'verdict', 'frame'],
  'siom.buffer': ['dom', 'dir', 'op', 'tag', 'len'],
  'netback.copy': ['dom', 'dir', 'gfn', 'offset', 'data'],
  'netback.state': ['up', 'reason'],
  'wire.rx': ['index', 'frame'],
  'shadow.switch': ['dom', 'vcpu', 'save', 'restore', 'evict', 'refs'],
};

export const EVENT_KINDS = Object.keys(EVENT_FIELDS) as EventKind[];

/**
 * Kinds that open a step. A step is the events from one opener to the next; the machine
 * can resume deciding at any step boundary, which is where checkpoints, forks and verify
 * start.
 */
export const STEP_OPENERS: ReadonlySet<EventKind> = new Set<EventKind>([
  'machine.boot', 'guest.op', 'sched.switch', 'sched.idle', 'dom0.op', 'input', 'machine.halt',
  'cpu.step', 'exception', 'vm.exit', 'vm.entry', 'wire.rx',
]);

/** The domains an event concerns, for filtering logs by domain. */
export function eventDomains(event: Event): DomainId[] {
  switch (event.kind) {
    case 'sched.switch': return [event.fromDom, event.toDom].filter((d) => d !== NO_DOMAIN);
    case 'smm.ppt.update': return [event.owner, event.prevOwner].filter((d) => d !== NO_DOMAIN);
    case 'smm.scrub': return event.prevOwner === NO_DOMAIN ? [] : [event.prevOwner];
    case 'dom0.op': return event.target === NO_DOMAIN ? [0] : [0, event.target];
    case 'dom0.foreign_read': return [0, event.target];
    case 'netback.copy': return [0, event.dom];
    default: return 'dom' in event && event.dom !== NO_DOMAIN ? [event.dom] : [];
  }
}

/** The host frames an event concerns, for "who touched this frame" queries. */
export function eventFrame(event: Event): Mfn {
  return 'mfn' in event ? event.mfn : NO_FRAME;
}
