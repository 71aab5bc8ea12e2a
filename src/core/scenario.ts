/**
 * Scenario files: YAML, validated with zod, compiled into a MachineConfig.
 *
 * Every error names the file, the field path and what was expected, and is an InputError
 * (exit code 2). Parsing is pure: the caller reads the file and passes its text.
 */
import yaml from 'js-yaml';
import { z } from 'zod';
import { InputError } from '../events/errors.ts';
import { HYPERCALL_NAMES, PROFILES, type Profile } from '../events/schema.ts';
import { FLAWS, type FlawName } from './flaws.ts';
import { AssemblyError, assemble } from './x86/index.ts';

export const PAGE_SIZE = 4096;
/** Frames below this belong to Xen itself and are never given to a domain (1 MiB). */
export const XEN_RESERVED_FRAMES = 256;
const GFN_LIMIT = 1 << 20;
const REPEAT_TIMES_MAX = 1_000_000_000;
const OPS_MAX = 100_000;

/** A compiled scripted-guest operation. `repeat`/`end` are loop control, free of time. */
export type GuestOp =
  | { op: 'write'; gpa: number; bytes: Uint8Array }
  | { op: 'read'; gpa: number; len: number }
  | { op: 'canary'; gpa: number; secret: Uint8Array | null; len: number }
  | { op: 'scan' }
  | { op: 'hypercall'; call: (typeof HYPERCALL_NAMES)[number]; args: number[]; text: string }
  | { op: 'yield' }
  | { op: 'exit' }
  | { op: 'repeat'; slot: number; times: number; end: number }
  | { op: 'end'; slot: number; start: number };

export interface Dom0Action {
  at: number;
  op: 'foreign_read' | 'create_domain' | 'destroy_domain';
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
  paging: 'ept' | 'shadow';
}

/** Reads a file a scenario names (a guest's assembly source), relative to the scenario. */
export type ReadInclude = (path: string) => string;

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
}

const tick = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const address = z.union([
  z.number().int().min(0).max(0xffff_ffff),
  z.string().regex(/^0x[0-9a-fA-F]{1,8}$/, 'expected a number or a hex string like 0x1000').transform((s) => Number.parseInt(s, 16)),
]);
const kib = z.number().int().min(4).max(4 * 1024 * 1024).refine((v) => v % 4 === 0, 'expected a multiple of 4 KiB (whole pages)');

const scenarioSchema = z.object({
  seed: z.union([z.number().int(), z.string().min(1)]).transform(String),
  machine: z.object({
    memoryMiB: z.number().int().min(2).max(4096).default(16),
    pcpus: z.number().int().min(1).max(64).default(1),
    profile: z.enum(PROFILES as [Profile, ...Profile[]]).default('secure'),
    quantum: z.number().int().min(1).max(1_000_000).default(3),
    timeslice: z.number().int().min(1).max(100_000_000).default(1000),
  }).strict().default({ memoryMiB: 16, pcpus: 1, profile: 'secure', quantum: 3, timeslice: 1000 }),
  flaws: z.array(z.string()).default([]),
  dom0: z.object({
    memoryKiB: kib.default(1024),
    actions: z.array(z.object({
      at: tick,
      op: z.enum(['foreign_read', 'destroy_domain']),
      domain: z.string(),
      gfn: z.number().int().min(0).max(GFN_LIMIT - 1).default(0),
      offset: z.number().int().min(0).max(PAGE_SIZE - 1).default(0),
      len: z.number().int().min(1).max(PAGE_SIZE).default(64),
    }).strict()).default([]),
  }).strict().default({ memoryKiB: 1024, actions: [] }),
  domains: z.array(z.object({
    name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'expected a lower-case name like "alice"'),
    memoryKiB: kib,
    maxMemoryKiB: kib.optional(),
    vcpus: z.number().int().min(1).max(8).default(1),
    start: tick.default(0),
    paging: z.enum(['ept', 'shadow']).default('ept'),
    guest: z.union([
      z.object({ ops: z.array(z.unknown()) }).strict(),
      z.object({ vcpus: z.array(z.object({ ops: z.array(z.unknown()) }).strict()).min(1) }).strict(),
      z.object({
        x86: z.object({
          source: z.string().min(1).optional(),
          asm: z.string().min(1).optional(),
          entry: address.optional(),
          stack: address.optional(),
        }).strict().refine((x) => (x.source === undefined) !== (x.asm === undefined), 'give exactly one of source (a file) or asm (inline)'),
      }).strict(),
    ]),
  }).strict()).min(1),
  inputs: z.array(z.object({
    at: tick,
    set: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  }).strict()).default([]),
}).strict();

const opSchemas = {
  write: z.object({
    gpa: address,
    text: z.string().optional(),
    hex: z.string().regex(/^([0-9a-fA-F]{2})+$/, 'expected pairs of hex digits').optional(),
  }).strict().refine((w) => (w.text === undefined) !== (w.hex === undefined), 'give exactly one of text or hex'),
  read: z.object({ gpa: address, len: z.number().int().min(1).max(PAGE_SIZE * 4) }).strict(),
  canary: z.object({
    gpa: address,
    secret: z.string().min(8).max(256).optional(),
    len: z.number().int().min(8).max(256).default(16),
  }).strict(),
  hypercall: z.discriminatedUnion('op', [
    z.object({ op: z.literal('populate_physmap'), gfn: z.number().int(), count: z.number().int() }).strict(),
    z.object({ op: z.literal('decrease_reservation'), gfns: z.array(z.number().int()).min(1).max(4096) }).strict(),
    z.object({ op: z.literal('console_write'), text: z.string().max(1024) }).strict(),
    z.object({ op: z.literal('sched_yield') }).strict(),
  ]),
  repeat: z.object({ times: z.number().int().min(0).max(REPEAT_TIMES_MAX), ops: z.array(z.unknown()).min(1) }).strict(),
};
const BARE_OPS = ['scan', 'yield', 'exit'] as const;

type Path = (string | number)[];

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((text, part) =>
    typeof part === 'number' ? `${text}[${part}]` : text === '' ? String(part) : `${text}.${String(part)}`, '');
}

function fail(file: string, path: readonly PropertyKey[], message: string): never {
  const where = path.length === 0 ? '' : ` ${formatPath(path)}:`;
  throw new InputError('scenario', `${file}:${where} ${message}`);
}

function check<T extends z.ZodType>(schema: T, value: unknown, file: string, path: Path): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    fail(file, [...path, ...issue.path], issue.message);
  }
  return result.data;
}

/** Compiles a list of scripted operations into flat code with loop slots. */
export function compileOps(ops: readonly unknown[], file: string, path: Path): GuestOp[] {
  const code: GuestOp[] = [];
  let slots = 0;
  const emit = (list: readonly unknown[], at: Path): void => {
    if (code.length + list.length > OPS_MAX) fail(file, at, `too many operations (at most ${OPS_MAX}; use repeat)`);
    list.forEach((item, index) => compileOne(item, [...at, index]));
  };
  const compileOne = (item: unknown, at: Path): void => {
    if (typeof item === 'string') {
      if (!(BARE_OPS as readonly string[]).includes(item)) fail(file, at, `unknown operation '${item}'; expected ${opNames()}`);
      code.push({ op: item as 'scan' | 'yield' | 'exit' });
      return;
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item) || Object.keys(item).length !== 1) {
      fail(file, at, `expected one operation such as {write: {gpa: 0x1000, text: "hi"}}; operations: ${opNames()}`);
    }
    const [name, body] = Object.entries(item)[0];
    switch (name) {
      case 'write': {
        const w = check(opSchemas.write, body, file, [...at, name]);
        const bytes = w.text !== undefined ? new TextEncoder().encode(w.text) : Buffer.from(w.hex!, 'hex');
        code.push({ op: 'write', gpa: w.gpa, bytes: new Uint8Array(bytes) });
        return;
      }
      case 'read': {
        const r = check(opSchemas.read, body, file, [...at, name]);
        code.push({ op: 'read', gpa: r.gpa, len: r.len });
        return;
      }
      case 'canary': {
        const c = check(opSchemas.canary, body, file, [...at, name]);
        const secret = c.secret === undefined ? null : new TextEncoder().encode(c.secret);
        code.push({ op: 'canary', gpa: c.gpa, secret, len: secret?.length ?? c.len });
        return;
      }
      case 'hypercall': {
        const h = check(opSchemas.hypercall, body, file, [...at, name]);
        code.push(compileHypercall(h));
        return;
      }
      case 'repeat': {
        const r = check(opSchemas.repeat, body, file, [...at, name]);
        const slot = slots++;
        const start = code.length;
        const begin: GuestOp = { op: 'repeat', slot, times: r.times, end: -1 };
        code.push(begin);
        emit(r.ops, [...at, name, 'ops']);
        if (!code.slice(start + 1).some((o) => o.op !== 'repeat' && o.op !== 'end')) {
          fail(file, [...at, name, 'ops'], 'a repeat needs at least one operation that takes time');
        }
        begin.end = code.length;
        code.push({ op: 'end', slot, start });
        return;
      }
      default:
        if ((BARE_OPS as readonly string[]).includes(name)) { compileOne(name, at); return; }
        fail(file, at, `unknown operation '${name}'; expected ${opNames()}`);
    }
  };
  emit(ops, path);
  return code;
}

function compileHypercall(h: z.output<typeof opSchemas.hypercall>): GuestOp {
  switch (h.op) {
    case 'populate_physmap': return { op: 'hypercall', call: h.op, args: [h.gfn, h.count], text: '' };
    case 'decrease_reservation': return { op: 'hypercall', call: h.op, args: h.gfns, text: '' };
    case 'console_write': return { op: 'hypercall', call: h.op, args: [], text: h.text };
    case 'sched_yield': return { op: 'hypercall', call: h.op, args: [], text: '' };
  }
}

function opNames(): string {
  return [...Object.keys(opSchemas), ...BARE_OPS].join(', ');
}

const noIncludes: ReadInclude = (path) => {
  throw new InputError('scenario', `cannot read ${path}: this scenario was given without its files`);
};

/** Parses and validates a scenario file's text; `readInclude` supplies guest sources. */
export function parseScenario(text: string, file: string, readInclude: ReadInclude = noIncludes): MachineConfig {
  let document: unknown;
  try {
    document = yaml.load(text, { filename: file });
  } catch (error) {
    const e = error as { mark?: { line: number; column: number }; reason?: string; message: string };
    const where = e.mark ? `${e.mark.line + 1}:${e.mark.column + 1}` : '';
    throw new InputError('scenario', `${file}:${where} malformed YAML: ${e.reason ?? e.message}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    fail(file, [], 'expected a mapping with seed, machine, domains (see README, "Scenario format")');
  }
  const s = check(scenarioSchema, document, file, []);
  return compileScenario(s, file, readInclude);
}

type X86Guest = { source?: string; asm?: string; entry?: number; stack?: number };

/** Assembles an x86 guest; errors point at the source's file:line:column. */
function buildImage(x86: X86Guest, memoryKiB: number, file: string, path: Path, readInclude: ReadInclude): GuestImage {
  const sourceName = x86.source ?? `${file} (${formatPath([...path, 'asm'])})`;
  const source = x86.source !== undefined ? readInclude(x86.source) : x86.asm!;
  let result;
  try {
    result = assemble(source, sourceName);
  } catch (error) {
    if (error instanceof AssemblyError) throw new InputError('scenario', `${error.message} (guest of ${formatPath(path)} in ${file})`);
    throw error;
  }
  const memoryBytes = memoryKiB * 1024;
  if (result.origin + result.bytes.length > memoryBytes) {
    fail(file, [...path, 'x86'], `the image (${result.bytes.length} bytes at org 0x${result.origin.toString(16)}) does not fit in the domain's ${memoryKiB} KiB`);
  }
  return { load: result.origin, bytes: result.bytes, entry: x86.entry ?? result.origin, stack: x86.stack ?? memoryBytes };
}

function compileScenario(s: z.output<typeof scenarioSchema>, file: string, readInclude: ReadInclude): MachineConfig {
  s.flaws.forEach((flaw, i) => {
    if (!(FLAWS as readonly string[]).includes(flaw)) {
      fail(file, ['flaws', i], `unknown flaw '${flaw}'; known flaws: ${FLAWS.length ? FLAWS.join(', ') : 'none yet'}`);
    }
  });
  const names = new Set<string>();
  const domains = s.domains.map((d, i): DomainSpec => {
    if (names.has(d.name) || d.name === 'dom0') fail(file, ['domains', i, 'name'], `duplicate or reserved domain name '${d.name}'`);
    names.add(d.name);
    const maxMemoryKiB = d.maxMemoryKiB ?? d.memoryKiB * 2;
    if (maxMemoryKiB < d.memoryKiB) fail(file, ['domains', i, 'maxMemoryKiB'], `must be at least memoryKiB (${d.memoryKiB})`);
    const base = { name: d.name, memoryKiB: d.memoryKiB, maxMemoryKiB, vcpus: d.vcpus, start: d.start, paging: d.paging };
    if ('x86' in d.guest) {
      if (d.vcpus !== 1) fail(file, ['domains', i, 'vcpus'], 'an x86 guest has one vCPU (application processors are not modelled)');
      return { ...base, programs: [], image: buildImage(d.guest.x86, d.memoryKiB, file, ['domains', i, 'guest'], readInclude) };
    }
    const lists = 'ops' in d.guest ? [d.guest.ops] : d.guest.vcpus.map((v) => v.ops);
    if (lists.length > d.vcpus) fail(file, ['domains', i, 'guest', 'vcpus'], `${lists.length} programs for ${d.vcpus} vcpus; raise vcpus or drop a program`);
    const guest = d.guest as { ops: unknown[] } | { vcpus: { ops: unknown[] }[] };
    const programs = lists.map((ops, v) => compileOps(ops, file, 'ops' in guest ? ['domains', i, 'guest', 'ops'] : ['domains', i, 'guest', 'vcpus', v, 'ops']));
    return { ...base, programs, image: null };
  });
  const frames = s.machine.memoryMiB * 256;
  const neededKiB = s.dom0.memoryKiB + domains.reduce((sum, d) => sum + d.memoryKiB, 0) + XEN_RESERVED_FRAMES * 4;
  if (neededKiB > frames * 4) {
    fail(file, ['machine', 'memoryMiB'], `domains, dom0 and Xen need ${neededKiB} KiB but the machine has ${frames * 4} KiB; raise memoryMiB or shrink the domains`);
  }
  const dom0Actions: Dom0Action[] = s.dom0.actions.map((a, i) => {
    if (!names.has(a.domain)) fail(file, ['dom0', 'actions', i, 'domain'], `no domain named '${a.domain}'; domains: ${[...names].join(', ')}`);
    return { ...a };
  });
  for (const d of domains) {
    if (d.start > 0) dom0Actions.push({ at: d.start, op: 'create_domain', domain: d.name, gfn: 0, offset: 0, len: 0 });
  }
  dom0Actions.sort((a, b) => a.at - b.at);
  const inputs = s.inputs.flatMap((input, i) => Object.entries(input.set).map(([key, value]): InputSpec => {
    const problem = inputProblem(key, String(value), domains.map((d) => d.name));
    if (problem) fail(file, ['inputs', i, 'set', key], problem);
    return { at: input.at, key, value: String(value) };
  }));
  return {
    seed: s.seed, profile: s.machine.profile, frames, pcpus: s.machine.pcpus, quantum: s.machine.quantum, timeslice: s.machine.timeslice,
    flaws: s.flaws as FlawName[], dom0MemoryKiB: s.dom0.memoryKiB, dom0Actions, domains, inputs,
  };
}

/**
 * What is wrong with a modification `key=value` (a fork's --set or a scenario input), or
 * undefined when it is acceptable. Keys: profile, quantum, flaw.NAME, domain.NAME.ops.
 */
export function inputProblem(key: string, value: string, domainNames: readonly string[]): string | undefined {
  const parts = key.split('.');
  if (key === 'profile') return PROFILES.includes(value as Profile) ? undefined : `profile must be ${PROFILES.join(' or ')}, not '${value}'`;
  if (key === 'quantum') return /^[1-9]\d{0,6}$/.test(value) ? undefined : `quantum must be a whole number from 1 to 1000000, not '${value}'`;
  if (parts[0] === 'flaw' && parts.length === 2) {
    if (!(FLAWS as readonly string[]).includes(parts[1])) return `unknown flaw '${parts[1]}'; known flaws: ${FLAWS.length ? FLAWS.join(', ') : 'none yet'}`;
    return value === 'on' || value === 'off' ? undefined : `flaw.${parts[1]} must be on or off, not '${value}'`;
  }
  if (parts[0] === 'domain' && parts.length === 3 && parts[2] === 'ops') {
    if (!domainNames.includes(parts[1])) return `no domain named '${parts[1]}'; domains: ${domainNames.join(', ')}`;
    try {
      const ops = yaml.load(value);
      if (!Array.isArray(ops)) return `domain.${parts[1]}.ops must be a list of operations, like [yield, {read: {gpa: 0, len: 8}}]`;
      compileOps(ops, '--set', [key]);
      return undefined;
    } catch (error) {
      return error instanceof InputError ? error.message : `domain.${parts[1]}.ops is not valid YAML: ${(error as Error).message}`;
    }
  }
  return `unknown key '${key}'; keys: profile, quantum, flaw.NAME, domain.NAME.ops`;
}

/** Compiles the value of an already-validated `domain.NAME.ops` modification. */
export function compileOpsValue(value: string): GuestOp[] {
  return compileOps(yaml.load(value) as unknown[], '--set', []);
}
