/**
 * fast-check arbitraries for chronovisor:
 * (a) one arbitrary per event kind, following EVENT_FIELDS in src/events/schema.ts;
 * (b) random scenarios, generated as a plain object, serialised with js-yaml and compiled
 *     with `parseScenario`, so the scenario parser is exercised by every property.
 */
import fc from 'fast-check';
import yaml from 'js-yaml';
import { makeEvent } from '../src/events/make-event.ts';
import {
  EVENT_FIELDS, EVENT_KINDS, GUEST_OP_NAMES, HYPERCALL_NAMES, INVARIANTS, PROFILES,
  type Event, type EventKind, type EventOf, type Profile,
} from '../src/events/schema.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';

// ---- value ranges ---------------------------------------------------------------------

const PAGE = 4096;
const GFN_LIMIT = 1 << 20;

/** Unicode text: mostly graphemes (valid UTF-16), some control and astral characters. */
export const unicodeText = (maxLength = 40): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength }) },
    { weight: 1, arbitrary: fc.constantFrom('', 'ü', '日本語', '🦀 emoji', 'a"b\'c\\d', 'line\nbreak', '\u0000nul', 'tab\t') },
  );

/** A domain id: -1 (none), dom0, or a guest. */
const domainId = fc.oneof(
  { weight: 1, arbitrary: fc.constant(-1) },
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 1000 }) },
);
/** A host frame, or -1 (none). */
const mfn = fc.oneof({ weight: 1, arbitrary: fc.constant(-1) }, { weight: 5, arbitrary: fc.integer({ min: 0, max: GFN_LIMIT * 4 }) });
const gfn = fc.integer({ min: 0, max: GFN_LIMIT - 1 });
/** Guest-physical addresses, including ones a foreign read computes past 4 GiB. */
const gpa = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  { weight: 1, arbitrary: fc.constantFrom(0, PAGE - 1, PAGE, 0xffff_ffff) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: GFN_LIMIT * PAGE + PAGE }) },
);
const pageOffset = fc.integer({ min: 0, max: PAGE - 1 });
const lineOffset = fc.integer({ min: 0, max: PAGE / 64 - 1 }).map((l) => l * 64);
const lineLen = fc.integer({ min: 1, max: PAGE / 64 }).map((l) => l * 64);
const pcpu = fc.integer({ min: 0, max: 63 });
const vcpu = fc.integer({ min: 0, max: 7 });
const errnoOrCount = fc.oneof(fc.constantFrom(0, -22, -12, -17, -3), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
/** Byte payloads: small ones mostly, whole pages sometimes. */
const bytes = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 96 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: PAGE, maxLength: PAGE }) },
);
const tick = fc.oneof(fc.nat(1000), fc.maxSafeNat());

// ---- events ---------------------------------------------------------------------------

/**
 * Hand-written arbitraries per kind. Partial, so that the schema may grow while these are
 * written: a kind without one gets `genericEvent` (see `eventArbitrary`), and the codec test
 * lists such kinds.
 */
type EventArbitraries = { [K in EventKind]?: fc.Arbitrary<EventOf<K>> };

const ev = <K extends EventKind>(kind: K, fields: { [F in keyof Omit<EventOf<K>, 'kind'>]: fc.Arbitrary<EventOf<K>[F]> }): fc.Arbitrary<EventOf<K>> =>
  fc.record(fields as never).map((f) => makeEvent(kind, f as never) as unknown as EventOf<K>);

export const eventArbitraries: EventArbitraries = {
  'guest.op': ev('guest.op', {
    dom: domainId, vcpu, pcpu, pc: fc.nat(100_000), op: fc.integer({ min: 0, max: GUEST_OP_NAMES.length - 1 }),
    next: fc.nat(100_001), loops: fc.array(fc.nat(1_000_000_000), { maxLength: 6 }),
  }),
  'mem.write': ev('mem.write', { dom: domainId, gpa, mfn, offset: pageOffset, stored: bytes }),
  'mem.read': ev('mem.read', { dom: domainId, gpa, mfn, offset: pageOffset, stored: bytes, value: bytes }),
  'mem.encrypt': ev('mem.encrypt', { dom: domainId, mfn, offset: lineOffset, len: lineLen, keyDom: domainId }),
  'mem.decrypt': ev('mem.decrypt', { dom: domainId, mfn, offset: lineOffset, len: lineLen, keyDom: domainId }),
  'sched.switch': ev('sched.switch', {
    pcpu, fromDom: domainId, fromVcpu: vcpu, toDom: domainId, toVcpu: vcpu, smmLive: domainId, quantum: fc.integer({ min: 1, max: 1_000_000 }),
  }),
  'sched.idle': ev('sched.idle', { pcpu, ticks: tick }),
  hypercall: ev('hypercall', {
    dom: domainId, vcpu, op: fc.constantFrom(...HYPERCALL_NAMES),
    args: fc.array(fc.oneof(fc.integer({ min: -5, max: 64 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(-1, 0, GFN_LIMIT, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER)), { maxLength: 40 }),
    text: unicodeText(200), result: errnoOrCount,
  }),
  'p2m.update': ev('p2m.update', { dom: domainId, gfn, mfn, prevMfn: mfn }),
  'smm.ppt.update': ev('smm.ppt.update', { mfn, owner: domainId, rights: fc.integer({ min: 0, max: 3 }), prevOwner: domainId }),
  'smm.scrub': ev('smm.scrub', { mfn, prevOwner: domainId }),
  'mem.fault': ev('mem.fault', {
    dom: domainId, gpa, mfn, access: fc.constantFrom('r' as const, 'w' as const),
    reason: fc.oneof(fc.constantFrom('p2m-missing', 'ppt-denied: frame owned by domain 2', 'ppt-denied: no write right'), unicodeText()),
  }),
  'dom0.op': ev('dom0.op', {
    index: fc.integer({ min: -1, max: 10_000 }), op: fc.constantFrom('foreign_read', 'create_domain', 'destroy_domain'),
    target: domainId, result: errnoOrCount,
  }),
  'dom0.foreign_read': ev('dom0.foreign_read', { target: domainId, gfn, mfn, offset: pageOffset, value: bytes }),
  'guest.canary': ev('guest.canary', {
    dom: domainId, gpa, secret: fc.uint8Array({ minLength: 8, maxLength: 256 }),
    prng: fc.oneof(fc.constant([] as number[]), fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 4, maxLength: 4 })),
  }),
  'smm.key.assign': ev('smm.key.assign', { dom: domainId, key: fc.uint8Array({ minLength: 64, maxLength: 64 }) }),
  'smm.key.revoke': ev('smm.key.revoke', { dom: domainId }),
  'domain.create': ev('domain.create', {
    dom: domainId, name: fc.oneof(fc.constantFrom('dom0', 'alice', 'bob'), unicodeText(32)),
    memoryKiB: fc.integer({ min: 1, max: 1 << 20 }).map((n) => n * 4), vcpus: fc.integer({ min: 0, max: 8 }),
  }),
  'domain.destroy': ev('domain.destroy', { dom: domainId, reason: fc.oneof(fc.constantFrom('shutdown', 'destroyed by dom0'), unicodeText()) }),
  violation: ev('violation', { invariant: fc.constantFrom(...INVARIANTS), dom: domainId, mfn, detail: unicodeText(120) }),
  input: ev('input', {
    index: fc.integer({ min: -1, max: 1000 }),
    key: fc.oneof(fc.constantFrom('profile', 'quantum', 'flaw.x', 'domain.alice.ops'), unicodeText()),
    value: unicodeText(100),
  }),
  'machine.boot': ev('machine.boot', {
    profile: fc.constantFrom(...PROFILES), frames: fc.integer({ min: 512, max: 1 << 20 }),
    pcpus: fc.integer({ min: 1, max: 64 }), seed: fc.oneof(fc.integer().map(String), unicodeText()),
  }),
  'machine.halt': ev('machine.halt', { reason: fc.oneof(fc.constant('all guests finished'), unicodeText()) }),
} as EventArbitraries;

// The CPU kinds (schema additions for the x86 guests), looked up by name so that this file
// does not depend on which of them the schema has at the moment.
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 0xffff_ffff, 0x8000_0000));
/** Register deltas: (register index, new value) pairs, flattened. */
const delta = fc.array(fc.tuple(fc.integer({ min: 0, max: 31 }), u32), { maxLength: 8 }).map((pairs) => pairs.flat());
const cpuArbitraries: Record<string, Record<string, fc.Arbitrary<unknown>>> = {
  'cpu.step': { dom: domainId, vcpu, pcpu, eip: u32, next: u32, delta },
  exception: { dom: domainId, vcpu, pcpu, vector: fc.integer({ min: 0, max: 255 }), errorCode: fc.oneof(fc.constant(-1), u32), cr2: u32, delta },
  'vm.exit': {
    dom: domainId, vcpu, pcpu, reason: fc.integer({ min: 0, max: 70 }), qualification: u32, gla: fc.oneof(fc.constant(-1), u32),
    gpa: fc.oneof(fc.constant(-1), gpa), length: fc.integer({ min: 0, max: 15 }),
  },
  'vm.entry': { dom: domainId, vcpu, delta, inject: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 255 })), errorCode: fc.oneof(fc.constant(-1), u32) },
  'vcpu.halt': { dom: domainId, vcpu },
  'tlb.fill': { dom: domainId, vcpu, page: fc.integer({ min: 0, max: 0xfffff }), mfn, flags: fc.integer({ min: 0, max: 0xfff }), evicted: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })), refs: fc.integer({ min: 0, max: 24 }) },
  'tlb.flush': { dom: domainId, vcpu, scope: fc.oneof(fc.constantFrom('all', 'page', 'domain'), unicodeText(8)), page: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })) },
  'ept.update': { dom: domainId, gfn, mfn, bits: fc.integer({ min: 0, max: 0xff }) },
  'shadow.sync': { dom: domainId, vcpu, op: fc.constantFrom('fill', 'flush'), page: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })), mfn, flags: fc.integer({ min: 0, max: 0xfff }) },
  'shadow.switch': {
    dom: domainId, vcpu, save: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })), restore: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })),
    evict: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xfffff })), refs: fc.nat(100_000),
  },
  io: { dom: domainId, vcpu, port: fc.integer({ min: 0, max: 0xffff }), size: fc.constantFrom(1, 2, 4), out: fc.boolean(), value: u32 },
  'lapic.timer': { dom: domainId, vcpu, vector: fc.integer({ min: 0, max: 255 }), periodTicks: fc.nat(1_000_000), deadline: fc.oneof(fc.constant(-1), fc.maxSafeNat()) },
};

const fieldsOf = (kind: EventKind): readonly string[] => EVENT_FIELDS[kind] as readonly string[];

for (const [kind, fields] of Object.entries(cpuArbitraries)) {
  const k = kind as EventKind;
  if (!(EVENT_KINDS as readonly string[]).includes(kind) || eventArbitraries[k] !== undefined) continue;
  if (fieldsOf(k).length !== Object.keys(fields).length || !fieldsOf(k).every((f) => f in fields)) continue; // the schema changed: use the generic one
  (eventArbitraries as Record<string, fc.Arbitrary<Event>>)[kind] = fc.record(fields).map((f) => makeEvent(k, f as never) as Event);
}

/** Any msgpack-able field value: for kinds nobody has written an arbitrary for yet. */
const anyFieldValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.constant(-1), unicodeText(20), fc.uint8Array({ maxLength: 64 }),
  fc.array(fc.integer({ min: -1, max: 0xffff_ffff }), { maxLength: 8 }), fc.boolean(),
);

/** An event of `kind` with arbitrary values in its schema fields. */
export function genericEvent(kind: EventKind): fc.Arbitrary<Event> {
  const fields = Object.fromEntries(fieldsOf(kind).map((f) => [f, anyFieldValue]));
  return fc.record(fields).map((f) => makeEvent(kind, f as never) as Event);
}

/** The kinds that have no hand-written arbitrary (they use `genericEvent`). */
export const kindsWithoutArbitrary = (): EventKind[] => EVENT_KINDS.filter((k) => eventArbitraries[k] === undefined);

export function eventArbitrary(kind: EventKind): fc.Arbitrary<Event> {
  return (eventArbitraries[kind] as fc.Arbitrary<Event> | undefined) ?? genericEvent(kind);
}

/** Any event of any kind in the schema, each kind about equally likely. */
export const anyEvent: fc.Arbitrary<Event> = fc.oneof(...EVENT_KINDS.map(eventArbitrary));

// ---- scenarios ------------------------------------------------------------------------

export const DOMAIN_NAMES = ['alice', 'bob', 'carol', 'dave', 'eve', 'mallory'] as const;

export interface ScenarioOptions {
  /** Profiles the machine may start in (default both). */
  profiles?: readonly Profile[];
  /** Profiles inputs may switch to; [] for no profile inputs (default both). */
  inputProfiles?: readonly Profile[];
  /** Allow `domain.NAME.ops` inputs (default true). */
  opsInputs?: boolean;
  /** Allow canaries whose secret the machine draws from its PRNG with a short length. */
  shortGeneratedCanaries?: boolean;
  /** Most operations per program at the top level (default 12). */
  maxOps?: number;
  /** Fewest and most scenario inputs (default 0 and 3). */
  minInputs?: number;
  maxInputs?: number;
  /** Which settings inputs make (default all three). */
  inputKinds?: readonly ('profile' | 'quantum' | 'ops')[];
  /**
   * Adds a domain 'zed' (never named by dom0 actions or inputs) that loops for a few
   * thousand steps, so runs span several chunks of CHUNK_EVENTS.
   */
  long?: boolean;
}

export interface GeneratedScenario {
  /** The scenario as generated (what was dumped). */
  doc: Record<string, unknown>;
  /** The YAML text given to the parser. */
  text: string;
  config: MachineConfig;
}

/** A number, or the same value as a hex string (the scenario format takes both). */
const addressValue = (value: number): fc.Arbitrary<number | string> =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(value) }, { weight: 1, arbitrary: fc.constant(`0x${value.toString(16)}`) });

/** Addresses inside the domain's memory, across page boundaries, just outside, and anywhere. */
function guestAddress(memoryBytes: number): fc.Arbitrary<number | string> {
  const pages = memoryBytes / PAGE;
  return fc.oneof(
    { weight: 5, arbitrary: fc.integer({ min: 0, max: memoryBytes - 1 }) },
    { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 1, max: pages }), fc.integer({ min: -48, max: 8 })).map(([p, d]) => p * PAGE + d) },
    { weight: 2, arbitrary: fc.integer({ min: memoryBytes, max: memoryBytes * 3 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 0xffff_ffff, 0xffff_fff0, 0x1000) },
  ).chain(addressValue);
}

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Scripted operations for a domain; `depth` bounds nested repeats. */
function operations(name: string, memoryKiB: number, depth: number, maxOps: number, options: ScenarioOptions): fc.Arbitrary<unknown[]> {
  const memoryBytes = memoryKiB * 1024;
  const pages = memoryKiB / 4;
  const address = guestAddress(memoryBytes);
  const hostileGfn = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: pages * 2 + 2 }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, -4096, GFN_LIMIT - 1, GFN_LIMIT, 2 ** 31 - 1, -(2 ** 31), Number.MAX_SAFE_INTEGER) },
  );
  const hostileCount = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 8 }) },
    { weight: 1, arbitrary: fc.integer({ min: 9, max: 200 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, -1, 1024, 1025, 2 ** 31 - 1, -(2 ** 31), Number.MAX_SAFE_INTEGER) },
  );
  const canarySecret = fc.string({ unit: 'grapheme', minLength: 4, maxLength: 24 })
    .map((s) => `${name}#secret#${s}`)
    .filter((s) => s.length <= 256);
  const leaf: fc.Arbitrary<unknown>[] = [
    fc.record({ gpa: address, text: unicodeText(60) }).map((w) => ({ write: w })),
    fc.record({ gpa: address, hex: fc.uint8Array({ minLength: 1, maxLength: 300 }).map(hexOf) }).map((w) => ({ write: w })),
    fc.record({ gpa: address, len: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: PAGE * 4 })) }).map((r) => ({ read: r })),
    fc.oneof(
      fc.record({ gpa: address, secret: canarySecret }),
      fc.record({ gpa: address, len: fc.integer({ min: options.shortGeneratedCanaries ? 8 : 24, max: 256 }) }),
      fc.record({ gpa: address }),
    ).map((c) => ({ canary: c })),
    fc.constantFrom('scan', { scan: null }),
    fc.record({ gfn: hostileGfn, count: hostileCount }).map((h) => ({ hypercall: { op: 'populate_physmap', ...h } })),
    fc.array(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: pages + 2 }) }, { weight: 1, arbitrary: hostileGfn }), { minLength: 1, maxLength: 12 })
      .map((gfns) => ({ hypercall: { op: 'decrease_reservation', gfns } })),
    unicodeText(80).map((text) => ({ hypercall: { op: 'console_write', text } })),
    fc.constant({ hypercall: { op: 'sched_yield' } }),
    fc.constantFrom('yield', { yield: null }),
    fc.constantFrom('exit', { exit: null }),
  ];
  const weighted = leaf.map((arbitrary, i) => ({
    arbitrary,
    // exit ends the domain: keep it rare; reads and writes common.
    weight: i === leaf.length - 1 ? 1 : i <= 2 ? 4 : 2,
  }));
  const op: fc.Arbitrary<unknown> = depth <= 0
    ? fc.oneof(...weighted)
    : fc.oneof(
      ...weighted,
      {
        weight: 2,
        arbitrary: fc.record({
          times: fc.integer({ min: 0, max: 4 }),
          ops: operations(name, memoryKiB, depth - 1, Math.max(1, Math.floor(maxOps / 2)), options).filter((o) => o.length > 0),
        }).map((r) => ({ repeat: r })),
      },
    );
  return fc.array(op, { minLength: 0, maxLength: maxOps });
}

interface DomainDraft {
  name: string;
  memoryKiB: number;
  maxMemoryKiB?: number;
  vcpus: number;
  start: number;
  guest: unknown;
}

function domain(name: string, options: ScenarioOptions): fc.Arbitrary<DomainDraft> {
  const maxOps = options.maxOps ?? 12;
  return fc.record({
    memoryKiB: fc.integer({ min: 4, max: 16 }).map((p) => p * 4),
    vcpus: fc.integer({ min: 1, max: 2 }),
    start: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) }),
    extraMax: fc.option(fc.oneof(fc.integer({ min: 0, max: 16 }), fc.constant(1024)), { nil: undefined }),
    perVcpu: fc.boolean(),
  }).chain(({ memoryKiB, vcpus, start, extraMax, perVcpu }) => {
    const program = operations(name, memoryKiB, 2, maxOps, options);
    const guest = perVcpu
      ? fc.array(program, { minLength: 1, maxLength: vcpus }).map((lists) => ({ vcpus: lists.map((ops) => ({ ops })) }))
      : program.map((ops) => ({ ops }));
    return guest.map((g): DomainDraft => ({
      name, memoryKiB, vcpus, start, guest: g,
      ...(extraMax === undefined ? {} : { maxMemoryKiB: memoryKiB + extraMax * 4 }),
    }));
  });
}

/** A random scenario: 1-4 small domains, hostile guests, dom0 actions and inputs. */
export function scenarioArbitrary(options: ScenarioOptions = {}): fc.Arbitrary<GeneratedScenario> {
  const profiles = options.profiles ?? PROFILES;
  const inputProfiles = options.inputProfiles ?? PROFILES;
  return fc.shuffledSubarray([...DOMAIN_NAMES], { minLength: 1, maxLength: 4 }).chain((names) => {
    const domains = fc.tuple(...names.map((n) => domain(n, options)));
    const action = fc.record({
      at: fc.integer({ min: 0, max: 40 }),
      op: fc.constantFrom('foreign_read', 'destroy_domain'),
      domain: fc.constantFrom(...names),
      gfn: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: GFN_LIMIT - 1 }) }),
      offset: fc.integer({ min: 0, max: PAGE - 1 }),
      len: fc.integer({ min: 1, max: PAGE }),
    }, { requiredKeys: ['at', 'op', 'domain'] });
    const kinds = options.inputKinds ?? ['profile', 'quantum', 'ops'];
    const settings: fc.Arbitrary<Record<string, unknown>>[] = [];
    if (kinds.includes('quantum')) settings.push(fc.integer({ min: 1, max: 5 }).map((q) => ({ quantum: q })));
    if (kinds.includes('profile') && inputProfiles.length > 0) settings.push(fc.constantFrom(...inputProfiles).map((p) => ({ profile: p })));
    if (kinds.includes('ops') && (options.opsInputs ?? true)) {
      settings.push(fc.constantFrom(...names).chain((n) => operations(n, 16, 1, 4, options).filter((o) => o.length > 0)
        // JSON is YAML flow syntax (js-yaml's own flow dump does not quote '{' or ',' in text).
        .map((ops) => ({ [`domain.${n}.ops`]: JSON.stringify(ops) }))));
    }
    const input = fc.record({ at: fc.integer({ min: 0, max: 40 }), set: settings.length === 0 ? fc.constant({}) : fc.oneof(...settings) });
    return fc.record({
      seed: fc.oneof(fc.integer({ min: -1000, max: 1_000_000 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 })),
      machine: fc.record({
        memoryMiB: fc.integer({ min: 2, max: 3 }),
        pcpus: fc.integer({ min: 1, max: 3 }),
        profile: fc.constantFrom(...profiles),
        quantum: fc.integer({ min: 1, max: 5 }),
      }),
      dom0: fc.record({
        memoryKiB: fc.integer({ min: 4, max: 64 }).map((p) => p * 4),
        actions: fc.array(action, { maxLength: 4 }),
      }),
      domains,
      inputs: settings.length === 0 ? fc.constant([]) : fc.array(input, { minLength: options.minInputs ?? 0, maxLength: options.maxInputs ?? 3 }),
      zed: options.long ? fc.integer({ min: 600, max: 1400 }) : fc.constant(0),
    });
  }).map(({ zed, ...doc }) => {
    if (zed > 0) {
      doc.domains = [...doc.domains, {
        name: 'zed', memoryKiB: 16, vcpus: 1, start: 0,
        guest: { ops: [{ repeat: { times: zed, ops: ['yield', { read: { gpa: 0x1ff8, len: 16 } }, { write: { gpa: 0x2ff0, text: 'zed was here' } }] } }] },
      }] as typeof doc.domains;
    }
    const text = yaml.dump(doc, { noRefs: true, lineWidth: -1 });
    const scenario: GeneratedScenario = { doc, text, config: parseScenario(text, 'gen.yaml') };
    // Counterexamples print as the scenario's YAML, ready to save and replay with the CLI.
    Object.defineProperty(scenario, fc.toStringMethod, { value: () => `scenario:\n${text}` });
    return scenario;
  });
}

/** Renders a generated scenario for a failure report. */
export const showScenario = (s: GeneratedScenario): string => s.text;
