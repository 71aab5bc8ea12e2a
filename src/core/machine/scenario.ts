/**
 * Scenario files: YAML, validated with zod, compiled into a MachineConfig.
 *
 * Every error names the file, the field path and what was expected, and is an InputError
 * (exit code 2). Parsing is pure: the caller reads the file and passes its text.
 */
import yaml from 'js-yaml';
import { z } from 'zod';
import { InputError } from '../../events/errors.ts';
import { PROFILES, type Profile } from '../../events/schema.ts';
import { buildFrame, isIpv4, isMac } from '../hardware/nic/ethernet.ts';
import { assemble, AssemblyError, formatWarning } from '../hardware/x86/index.ts';
import {
  DOM0_OPS, PAGE_SIZE, XEN_RESERVED_FRAMES, type Dom0Action, type DomainSpec, type GuestImage, type GuestOp, type InputSpec,
  type MachineConfig, type NetworkConfig,
} from '../hypervisor/config.ts';
import { FLAWS, type FlawName } from '../hypervisor/flaws.ts';

const GFN_LIMIT = 1 << 20;
const REPEAT_TIMES_MAX = 1_000_000_000;
const OPS_MAX = 100_000;

/** Reads a file a scenario names (a guest's assembly source), relative to the scenario. */
export type ReadInclude = (path: string) => string;

/**
 * The version of the compiled scenario: bump it when the MachineConfig a scenario text
 * compiles to changes (a field added, removed or meaning something else, a default, how an
 * operation compiles). Runs record it; a recording compiled by another version is refused,
 * since its first checkpoint and re-parsed scenario would no longer agree.
 */
export const SCENARIO_FORMAT_VERSION = 1;

/** Hears what compiling a scenario warns about (NASM's warnings on a guest's source). */
export type Warn = (message: string) => void;
const ignoreWarnings: Warn = () => {};

const tick = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const address = z.union([
  z.number().int().min(0).max(0xffff_ffff),
  z.string().regex(/^0x[0-9a-fA-F]{1,8}$/, 'expected a number or a hex string like 0x1000').transform((s) => Number.parseInt(s, 16)),
]);
const mac = z.string().transform((m) => m.toLowerCase()).refine(isMac, 'expected a MAC address like 02:00:00:00:00:01');
const ipv4 = z.string().refine(isIpv4, 'expected an IPv4 address like 10.0.0.1');
const vlanId = z.number().int().min(0).max(4094);
const hexBytes = z.string().regex(/^([0-9a-fA-F]{2})+$/, 'expected pairs of hex digits');
const frameSpec = z.object({
  dst: mac,
  src: mac,
  vlan: vlanId.default(0),
  udp: z.object({ src: ipv4, dst: ipv4, srcPort: z.number().int().min(0).max(65535), dstPort: z.number().int().min(0).max(65535) }).strict().optional(),
  text: z.string().max(1400).optional(),
  hex: hexBytes.optional(),
}).strict().refine((f) => (f.text === undefined) !== (f.hex === undefined), 'give exactly one of text or hex as the payload');
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
      op: z.enum(['foreign_read', 'destroy_domain', 'assign_vf', 'deassign_vf', 'crash_backend']),
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
    nic: z.object({ mac, vlan: vlanId.default(0), ip: ipv4, spoofcheck: z.boolean().default(true) }).strict().optional(),
    guest: z.union([
      z.object({ ops: z.array(z.unknown()) }).strict(),
      z.object({ vcpus: z.array(z.object({ ops: z.array(z.unknown()) }).strict()).min(1) }).strict(),
      z.object({
        x86: z.object({
          source: z.string().min(1).optional(),
          asm: z.string().min(1).optional(),
          /** A binary image instead of a source: hex bytes loaded at `load` (default 0x1000). */
          hex: z.string().regex(/^([0-9a-fA-F]{2})+$/, 'expected pairs of hex digits').optional(),
          load: address.optional(),
          entry: address.optional(),
          stack: address.optional(),
          /** Constants the source sees, as if it began with `NAME equ VALUE` lines. */
          defines: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an identifier'), z.number().int()).default({}),
        }).strict().refine((x) => [x.source, x.asm, x.hex].filter((v) => v !== undefined).length === 1, 'give exactly one of source (a file), asm (inline) or hex (a binary image)'),
      }).strict(),
    ]),
  }).strict()).min(1),
  inputs: z.array(z.object({
    at: tick,
    set: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  }).strict()).default([]),
  network: z.object({
    vfs: z.number().int().min(1).max(63).default(4),
    securityGroups: z.array(z.object({
      domain: z.string(),
      direction: z.enum(['ingress', 'egress']),
      protocol: z.enum(['udp', 'tcp', 'any']).default('any'),
      remote: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'expected address/prefix like 10.0.0.0/24').default('0.0.0.0/0'),
      port: z.number().int().min(0).max(65535).default(0),
      action: z.enum(['allow', 'deny']).default('allow'),
    }).strict()).default([]),
    wire: z.array(z.object({ at: tick, frame: frameSpec }).strict()).default([]),
  }).strict().default({ vfs: 4, securityGroups: [], wire: [] }),
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
    /** XENMEM_add_to_physmap with XENMAPSPACE_gmfn_foreign: map another domain's gfn at our gpfn (dom0 only). */
    z.object({ op: z.literal('add_to_physmap'), domid: z.number().int(), gfn: z.number().int(), gpfn: z.number().int() }).strict(),
  ]),
  repeat: z.object({ times: z.number().int().min(0).max(REPEAT_TIMES_MAX), ops: z.array(z.unknown()).min(1) }).strict(),
  /** A frame for the VF to send: the driver fills a tx descriptor; `buffer` points it elsewhere than the frame. */
  nic_tx: z.object({
    dst: mac, src: mac.optional(), vlan: vlanId.optional(), hex: hexBytes.optional(), text: z.string().max(1400).optional(), buffer: address.optional(),
  }).strict(),
  nic_rx: z.object({ buffer: address }).strict(),
  mmio: z.object({ bar: z.union([z.literal(0), z.literal(3)]), offset: z.number().int().min(0).max(0x3ffc), value: z.number().int().min(0).max(0xffff_ffff) }).strict(),
};
const BARE_OPS = ['scan', 'yield', 'exit', 'nic_setup'] as const;

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
      code.push({ op: item as (typeof BARE_OPS)[number] });
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
      case 'nic_tx': {
        const t = check(opSchemas.nic_tx, body, file, [...at, name]);
        // The source MAC defaults to the sender's own: the driver fills it in when it runs.
        const payload = t.text !== undefined ? new TextEncoder().encode(t.text) : Buffer.from(t.hex ?? '', 'hex');
        const frame = buildFrame({ dst: t.dst, src: t.src ?? '00:00:00:00:00:00', vlan: t.vlan, payload: new Uint8Array(payload) });
        code.push({ op: 'nic_tx', frame, buffer: t.buffer ?? null });
        return;
      }
      case 'nic_rx': {
        const r = check(opSchemas.nic_rx, body, file, [...at, name]);
        code.push({ op: 'nic_rx', buffer: r.buffer });
        return;
      }
      case 'mmio': {
        const w = check(opSchemas.mmio, body, file, [...at, name]);
        code.push({ op: 'mmio', bar: w.bar, offset: w.offset & ~3, value: w.value });
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
    case 'add_to_physmap': return { op: 'hypercall', call: h.op, args: [h.domid, h.gfn, h.gpfn], text: '' };
  }
}

function opNames(): string {
  return [...Object.keys(opSchemas), ...BARE_OPS].join(', ');
}

const noIncludes: ReadInclude = (path) => {
  throw new InputError('scenario', `cannot read ${path}: this scenario was given without its files`);
};

/** Parses and validates a scenario file's text; `readInclude` supplies guest sources. */
export function parseScenario(text: string, file: string, readInclude: ReadInclude = noIncludes, warn: Warn = ignoreWarnings): MachineConfig {
  let document: unknown;
  try {
    document = yaml.load(text, { filename: file });
  } catch (error) {
    const e = error as { mark?: { line: number; column: number }; reason?: string; message: string };
    const where = e.mark ? `${e.mark.line + 1}:${e.mark.column + 1}` : '';
    throw new InputError('scenario', `${file}:${where} malformed YAML: ${e.reason ?? e.message}`);
  }
  return scenarioFromObject(document, file, readInclude, warn);
}

/** Validates and compiles a scenario already read into plain data (what a generator builds). */
export function scenarioFromObject(document: unknown, file: string, readInclude: ReadInclude = noIncludes, warn: Warn = ignoreWarnings): MachineConfig {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    fail(file, [], 'expected a mapping with seed, machine, domains (see README, "Scenario format")');
  }
  const s = check(scenarioSchema, document, file, []);
  return compileScenario(s, file, readInclude, warn);
}

type X86Guest = { source?: string; asm?: string; hex?: string; load?: number; entry?: number; stack?: number; defines: Record<string, number> };

/** Assembles an x86 guest (or takes its binary image); errors point at the source's file:line:column. */
function buildImage(x86: X86Guest, memoryKiB: number, file: string, path: Path, readInclude: ReadInclude, warn: Warn): GuestImage {
  if (x86.hex !== undefined) {
    const load = x86.load ?? 0x1000;
    const bytes = Uint8Array.from(Buffer.from(x86.hex, 'hex'));
    if (load + bytes.length > memoryKiB * 1024) fail(file, [...path, 'x86', 'hex'], `the image (${bytes.length} bytes at 0x${load.toString(16)}) does not fit in the domain's ${memoryKiB} KiB`);
    return { load, bytes, entry: x86.entry ?? load, stack: x86.stack ?? memoryKiB * 1024 };
  }
  const sourceName = x86.source ?? `${file} (${formatPath([...path, 'asm'])})`;
  const source = x86.source !== undefined ? readInclude(x86.source) : x86.asm!;
  // %include paths are relative to the guest source's folder (nasm -i that folder), or to the scenario's for inline code.
  const base = x86.source !== undefined && x86.source.includes('/') ? x86.source.slice(0, x86.source.lastIndexOf('/') + 1) : '';
  const include = (name: string): { file: string; text: string } => ({ file: base + name, text: readInclude(base + name) });
  let result;
  try {
    result = assemble(source, sourceName, x86.defines, include);
  } catch (error) {
    if (error instanceof AssemblyError) throw new InputError('scenario', `${error.message} (guest of ${formatPath(path)} in ${file})`);
    throw error;
  }
  for (const warning of result.warnings) warn(`${formatWarning(warning)} (guest of ${formatPath(path)} in ${file})`);
  const memoryBytes = memoryKiB * 1024;
  if (result.origin + result.bytes.length > memoryBytes) {
    fail(file, [...path, 'x86'], `the image (${result.bytes.length} bytes at org 0x${result.origin.toString(16)}) does not fit in the domain's ${memoryKiB} KiB`);
  }
  return { load: result.origin, bytes: result.bytes, entry: x86.entry ?? result.origin, stack: x86.stack ?? memoryBytes };
}

function compileScenario(s: z.output<typeof scenarioSchema>, file: string, readInclude: ReadInclude, warn: Warn): MachineConfig {
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
    const nic = d.nic ?? null;
    const base = { name: d.name, memoryKiB: d.memoryKiB, maxMemoryKiB, vcpus: d.vcpus, start: d.start, paging: d.paging, nic };
    if ('x86' in d.guest) {
      if (d.vcpus !== 1) fail(file, ['domains', i, 'vcpus'], 'an x86 guest has one vCPU (application processors are not modelled)');
      return { ...base, programs: [], image: buildImage(d.guest.x86, d.memoryKiB, file, ['domains', i, 'guest'], readInclude, warn) };
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
    const problem = inputProblem(key, String(value), domains);
    if (problem) fail(file, ['inputs', i, 'set', key], problem);
    return { at: input.at, key, value: String(value) };
  }));
  return {
    seed: s.seed, profile: s.machine.profile, frames, pcpus: s.machine.pcpus, quantum: s.machine.quantum, timeslice: s.machine.timeslice,
    flaws: s.flaws as FlawName[], dom0MemoryKiB: s.dom0.memoryKiB, dom0Actions, domains, inputs,
    network: compileNetwork(s.network, domains, file),
  };
}

function compileNetwork(n: z.output<typeof scenarioSchema>['network'], domains: DomainSpec[], file: string): NetworkConfig {
  const withNic = domains.filter((d) => d.nic !== null);
  if (withNic.length > n.vfs) fail(file, ['network', 'vfs'], `${withNic.length} domains have a nic but the NIC has ${n.vfs} VFs; raise network.vfs`);
  const macs = new Set<string>();
  domains.forEach((d, i) => {
    if (d.nic === null) return;
    if (macs.has(d.nic.mac)) fail(file, ['domains', i, 'nic', 'mac'], `MAC ${d.nic.mac} is already another domain's`);
    macs.add(d.nic.mac);
  });
  n.securityGroups.forEach((rule, i) => {
    if (!domains.some((d) => d.name === rule.domain)) fail(file, ['network', 'securityGroups', i, 'domain'], `no domain named '${rule.domain}'`);
    const [address, prefix] = rule.remote.split('/');
    if (!isIpv4(address) || Number(prefix) > 32) fail(file, ['network', 'securityGroups', i, 'remote'], `'${rule.remote}' is not address/prefix with a prefix of 0..32`);
  });
  const wire = n.wire.map((w) => ({
    at: w.at,
    frame: buildFrame({
      dst: w.frame.dst, src: w.frame.src, vlan: w.frame.vlan, udp: w.frame.udp,
      payload: w.frame.text !== undefined ? new TextEncoder().encode(w.frame.text) : Buffer.from(w.frame.hex!, 'hex'),
    }),
  })).sort((a, b) => a.at - b.at);
  return { vfs: n.vfs, securityGroups: n.securityGroups.map((r) => ({ ...r })), wire };
}

/**
 * What is wrong with a modification `key=value` (a fork's --set or a scenario input), or
 * undefined when it is acceptable. Keys: profile, quantum, flaw.NAME, domain.NAME.ops,
 * domain.NAME.x86 (a new image for an x86 domain, which restarts at its entry), dom0.OP,
 * and the adversary's wire.frame, device.dma and device.msi.
 */
export function inputProblem(key: string, value: string, domains: readonly DomainSpec[]): string | undefined {
  const parts = key.split('.');
  const domainNames = domains.map((d) => d.name);
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
  if (parts[0] === 'domain' && parts.length === 3 && parts[2] === 'x86') {
    const spec = domains.find((d) => d.name === parts[1]);
    if (spec?.image == null) return `domain.${parts[1]}.x86: no x86 domain named '${parts[1]}'; x86 domains: ${domains.filter((d) => d.image).map((d) => d.name).join(', ') || 'none'}`;
    if (!/^([0-9a-f]{2})+$/i.test(value)) return `domain.${parts[1]}.x86 must be the new image in hex, not '${value.slice(0, 40)}'`;
    if (spec.image.load + value.length / 2 > spec.memoryKiB * 1024) return `domain.${parts[1]}.x86: ${value.length / 2} bytes at 0x${spec.image.load.toString(16)} do not fit in ${spec.memoryKiB} KiB`;
    return undefined;
  }
  if (parts[0] === 'dom0' && parts.length === 2) {
    try {
      parseDom0Input(parts[1], value, domainNames);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }
  if (key === 'wire.frame') return /^([0-9a-f]{2}){14,1518}$/i.test(value) ? undefined : `wire.frame must be a frame of 14 to 1518 bytes in hex, not '${value.slice(0, 40)}'`;
  if (key === 'device.dma') return parseDeviceDma(value) === undefined ? `device.dma takes VF:r:IOVA:LEN or VF:w:IOVA:HEX (like 1:w:0x2000:deadbeef), not '${value}'` : undefined;
  if (key === 'device.msi') return parseDeviceMsi(value) === undefined ? `device.msi takes SID:ADDRESS:DATA (like 0x280:0xfee00010:0), not '${value}'` : undefined;
  return `unknown key '${key}'; keys: profile, quantum, flaw.NAME, domain.NAME.ops, domain.NAME.x86, dom0.OP, wire.frame, device.dma, device.msi`;
}

/** An adversarial device's DMA, as an input: VF number, direction, IOVA, and the bytes or a length. */
export function parseDeviceDma(value: string): { vf: number; write: boolean; iova: number; data: Uint8Array; len: number } | undefined {
  const m = /^(\d{1,2}):([rw]):(0x[0-9a-f]{1,12}|\d{1,15}):([0-9a-f]*)$/i.exec(value);
  if (!m) return undefined;
  const write = m[2] === 'w';
  if (write && !/^([0-9a-f]{2}){1,4096}$/i.test(m[4])) return undefined;
  if (!write && !/^\d{1,4}$/.test(m[4])) return undefined;
  const len = write ? m[4].length / 2 : Number(m[4]);
  if (len < 1 || len > PAGE_SIZE) return undefined;
  return { vf: Number(m[1]), write, iova: Number(m[3]), data: write ? Uint8Array.from(Buffer.from(m[4], 'hex')) : new Uint8Array(0), len };
}

/** An interrupt request by any source id, as an input: SID:ADDRESS:DATA. */
export function parseDeviceMsi(value: string): { sid: number; address: number; data: number } | undefined {
  const parts = value.split(':').map((p) => (/^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(p) ? Number(p) : Number.NaN));
  if (parts.length !== 3 || parts.some(Number.isNaN) || parts[0] > 0xffff || parts[1] > 0xffff_ffff || parts[2] > 0xffff_ffff) return undefined;
  return { sid: parts[0], address: parts[1], data: parts[2] };
}

/**
 * A dom0 action given as an input: `dom0.OP=DOMAIN`, or for foreign_read
 * `dom0.foreign_read=DOMAIN:GFN:OFFSET:LEN` (crash_backend takes any value, like `-`).
 */
export function parseDom0Input(op: string, value: string, domainNames: readonly string[]): Dom0Action {
  if (!(DOM0_OPS as readonly string[]).includes(op)) throw new Error(`unknown dom0 action '${op}'; actions: ${DOM0_OPS.join(', ')}`);
  const [domain = '', ...numbers] = value.split(':');
  if (op !== 'crash_backend' && !domainNames.includes(domain)) throw new Error(`dom0.${op}: no domain named '${domain}'; domains: ${domainNames.join(', ')}`);
  const [gfn = 0, offset = 0, len = 64] = numbers.map(Number);
  const fits = [gfn, offset, len].every(Number.isInteger) && gfn >= 0 && gfn < GFN_LIMIT && offset >= 0 && offset < PAGE_SIZE && len >= 1 && len <= PAGE_SIZE;
  if (op === 'foreign_read' && (numbers.length !== 3 || !fits)) throw new Error(`dom0.foreign_read takes DOMAIN:GFN:OFFSET:LEN with an offset below ${PAGE_SIZE} and a length of 1..${PAGE_SIZE}, not '${value}'`);
  return { at: 0, op: op as Dom0Action['op'], domain, gfn, offset, len };
}

/** Compiles the value of an already-validated `domain.NAME.ops` modification. */
export function compileOpsValue(value: string): GuestOp[] {
  return compileOps(yaml.load(value) as unknown[], '--set', []);
}
