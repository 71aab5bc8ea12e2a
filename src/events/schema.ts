/**
 * The event union, schema v1: every fact the machine can state about one step.
 *
 * Events carry their effects (bytes as stored, table entries as written), so folding a
 * recording never re-executes the machine. Field order is part of the schema: the codec
 * stores one record structure per kind, in the order given by EVENT_FIELDS.
 */

/** Bumped whenever a kind, a field or a field's meaning changes. */
export const SCHEMA_VERSION = 1;

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
  'write', 'read', 'canary', 'scan', 'hypercall', 'yield', 'exit',
] as const;
export type GuestOpName = (typeof GUEST_OP_NAMES)[number];

/** Hypercalls a guest may make (Xen names). */
export const HYPERCALL_NAMES = [
  'populate_physmap', 'decrease_reservation', 'console_write', 'sched_yield',
] as const;
export type HypercallName = (typeof HYPERCALL_NAMES)[number];

export const INVARIANTS = [
  'single-owner',
  'no-aliasing',
  'scrub-between-owners',
  'canary-confined',
  'dom0-no-plaintext',
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
};

export const EVENT_KINDS = Object.keys(EVENT_FIELDS) as EventKind[];

/**
 * Kinds that open a step. A step is the events from one opener to the next; the machine
 * can resume deciding at any step boundary, which is where checkpoints, forks and verify
 * start.
 */
export const STEP_OPENERS: ReadonlySet<EventKind> = new Set<EventKind>([
  'machine.boot', 'guest.op', 'sched.switch', 'sched.idle', 'dom0.op', 'input', 'machine.halt',
]);

/** Builds an event with its fields in schema order (the codec relies on that order). */
export function makeEvent<K extends EventKind>(kind: K, fields: Shape[K]): Extract<Event, { kind: K }> {
  const event: Record<string, unknown> = { kind };
  for (const name of EVENT_FIELDS[kind]) event[name as string] = fields[name];
  return event as unknown as Extract<Event, { kind: K }>;
}

/** The domains an event concerns, for filtering logs by domain. */
export function eventDomains(event: Event): DomainId[] {
  switch (event.kind) {
    case 'sched.switch': return [event.fromDom, event.toDom].filter((d) => d !== NO_DOMAIN);
    case 'smm.ppt.update': return [event.owner, event.prevOwner].filter((d) => d !== NO_DOMAIN);
    case 'smm.scrub': return event.prevOwner === NO_DOMAIN ? [] : [event.prevOwner];
    case 'dom0.op': return event.target === NO_DOMAIN ? [0] : [0, event.target];
    case 'dom0.foreign_read': return [0, event.target];
    default: return 'dom' in event && event.dom !== NO_DOMAIN ? [event.dom] : [];
  }
}

/** The host frames an event concerns, for "who touched this frame" queries. */
export function eventFrame(event: Event): Mfn {
  return 'mfn' in event ? event.mfn : NO_FRAME;
}
