/**
 * Addresses as the forensic commands, the TUI and JSON name them, in one syntax:
 *
 *   mfn:321            a host frame (all of it)     mfn:321+0x10/16   bytes of a host frame
 *   gpa:alice:0x1000   guest-physical, of a domain  linear:erin.v0:0x8000  as a vCPU sees it
 *   iova:02:10.0:0x2000  as a device's DMA reaches it (through its IOMMU domain)
 *   reg:erin.v0:eax    a register of an x86 vCPU (eax, ax, al, ah, ..., eflags)
 *
 * with an optional length, `/LEN` (bytes; default 1, the whole frame for a bare `mfn:N`).
 * Parsing is syntax only; `resolveAddress` names the host bytes (frame and offset ranges)
 * or the register bytes an address designates at a seq, through the state at that seq: the
 * p2m for gpa, the vCPU's TLB and paging for linear, the device's IOMMU domain for iova.
 * Every name of one physical byte resolves to the same host byte.
 */
import { InputError } from '../../events/errors.ts';
import type { DomainId, Mfn, Seq } from '../../events/schema.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import type { MachineState } from '../../core/machine/state.ts';
import type { Domain } from '../../core/hypervisor/state.ts';
import { CR0_PG, guestWalk, type WalkPort } from '../../core/hardware/paging/guest-walk.ts';
import { ownerPlaintext } from '../../core/hypervisor/memory/smm.ts';
import { pciBdfFormat, pciBdf } from '../../core/hardware/pci/index.ts';
import { vtdTranslate } from '../../core/hardware/iommu/index.ts';
import { hostPhysicalMemory } from '../../core/hypervisor/memory/host-frames.ts';

export type Address =
  | { space: 'mfn'; mfn: Mfn; offset: number; length: number }
  | { space: 'gpa'; domain: string; gpa: number; length: number }
  | { space: 'linear'; domain: string; vcpu: number; linear: number; length: number }
  | { space: 'iova'; bdf: number; iova: number; length: number }
  | { space: 'reg'; domain: string; vcpu: number; register: string };

export const ADDRESS_SPACES = ['mfn', 'gpa', 'linear', 'iova', 'reg'] as const;

/** Bytes of one host frame. */
export interface HostRange {
  mfn: Mfn;
  offset: number;
  length: number;
}

/** Index of EFLAGS among the register slots (the general registers are 0..7, as encoded). */
export const EFLAGS_SLOT = 8;
export const REGISTER_SLOTS = 9;

/** Bytes of a register of an x86 vCPU: `slot` 0..7 the general registers, 8 EFLAGS. */
export interface RegisterBytes {
  dom: DomainId;
  vcpu: number;
  slot: number;
  /** The first byte within the 32-bit register (1 for ah) and how many. */
  byte: number;
  length: number;
}

export type Resolved =
  | { kind: 'memory'; ranges: HostRange[] }
  | { kind: 'register'; register: RegisterBytes };

const GPR32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
const GPR16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'];
const GPR8 = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];

/** A register name as slot and bytes; undefined when there is no such register. */
export function registerBytes(name: string): { slot: number; byte: number; length: number } | undefined {
  const lower = name.toLowerCase();
  if (lower === 'eflags') return { slot: EFLAGS_SLOT, byte: 0, length: 4 };
  if (GPR32.includes(lower)) return { slot: GPR32.indexOf(lower), byte: 0, length: 4 };
  if (GPR16.includes(lower)) return { slot: GPR16.indexOf(lower), byte: 0, length: 2 };
  const low = GPR8.indexOf(lower);
  if (low >= 0) return low < 4 ? { slot: low, byte: 0, length: 1 } : { slot: low - 4, byte: 1, length: 1 };
  return undefined;
}

/** The name of a register slot (its 32-bit name). */
export function slotName(slot: number): string {
  return slot === EFLAGS_SLOT ? 'eflags' : GPR32[slot];
}

const REGISTER_LIST = [...GPR32, ...GPR16, ...GPR8, 'eflags'].join(', ');

const EXAMPLES = 'for example mfn:321/64, mfn:321+0x10, gpa:alice:0x1000/62, linear:erin.v0:0x8000, iova:02:10.0:0x2000, reg:erin.v0:eax';

function bad(argument: string, text: string, why: string): InputError {
  return new InputError('argument', `${argument} ${text}: ${why} (${EXAMPLES})`);
}

/** A number as written: 0x hex or decimal. */
function number(text: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text.slice(2), 16);
  if (/^\d+$/.test(text)) return Number(text);
  return undefined;
}

/** `dom.vN` -> domain text and vCPU. */
function vcpuRef(argument: string, text: string, part: string): { domain: string; vcpu: number } {
  const match = /^(.+)\.v(\d+)$/.exec(part);
  if (match === null) throw bad(argument, text, `'${part}' is not a vCPU; write DOMAIN.vN, like erin.v0`);
  return { domain: match[1], vcpu: Number(match[2]) };
}

/** Parses an address (syntax only; resolveAddress checks it against a state). */
export function parseAddress(text: string, argument = 'address'): Address {
  const slash = text.lastIndexOf('/');
  const body = slash >= 0 ? text.slice(0, slash) : text;
  let length: number | undefined;
  if (slash >= 0) {
    length = number(text.slice(slash + 1));
    if (length === undefined || length < 1 || length > 1 << 20) throw bad(argument, text, `the length after '/' must be a number of bytes, 1 to ${1 << 20}`);
  }
  const colon = body.indexOf(':');
  const space = colon < 0 ? body : body.slice(0, colon);
  const rest = colon < 0 ? '' : body.slice(colon + 1);
  switch (space) {
    case 'mfn': {
      const [frame, offsetText, ...more] = rest.split('+');
      const mfn = number(frame);
      const offset = offsetText === undefined ? 0 : number(offsetText);
      if (mfn === undefined || offset === undefined || more.length > 0) throw bad(argument, text, 'expected mfn:FRAME or mfn:FRAME+OFFSET');
      if (offset >= PAGE_SIZE) throw bad(argument, text, `offset 0x${offset.toString(16)} is beyond the frame (a frame has 0x1000 bytes)`);
      return { space, mfn, offset, length: length ?? (offsetText === undefined ? PAGE_SIZE : 1) };
    }
    case 'gpa': {
      const at = rest.lastIndexOf(':');
      const gpa = number(rest.slice(at + 1));
      if (at <= 0 || gpa === undefined) throw bad(argument, text, 'expected gpa:DOMAIN:ADDRESS');
      return { space, domain: rest.slice(0, at), gpa, length: length ?? 1 };
    }
    case 'linear': {
      const at = rest.lastIndexOf(':');
      const linear = number(rest.slice(at + 1));
      if (at <= 0 || linear === undefined || linear >= 2 ** 32) throw bad(argument, text, 'expected linear:DOMAIN.vN:ADDRESS (a 32-bit address)');
      return { space, ...vcpuRef(argument, text, rest.slice(0, at)), linear, length: length ?? 1 };
    }
    case 'iova': {
      const match = /^([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7]):(.+)$/i.exec(rest);
      const iova = match === null ? undefined : number(match[4]);
      if (match === null || iova === undefined) throw bad(argument, text, 'expected iova:BB:DD.F:ADDRESS, a device as lspci names it');
      const device = Number.parseInt(match[2], 16);
      if (device > 0x1f) throw bad(argument, text, `device ${match[2]} is beyond 1f`);
      return { space, bdf: pciBdf(Number.parseInt(match[1], 16), device, Number(match[3])), iova, length: length ?? 1 };
    }
    case 'reg': {
      const at = rest.lastIndexOf(':');
      if (at <= 0) throw bad(argument, text, 'expected reg:DOMAIN.vN:REGISTER');
      const register = rest.slice(at + 1).toLowerCase();
      if (registerBytes(register) === undefined) throw bad(argument, text, `no register '${register}'; registers: ${REGISTER_LIST}`);
      if (length !== undefined) throw bad(argument, text, 'a register has no /LEN: name a narrower register (ax, al, ah)');
      return { space, ...vcpuRef(argument, text, rest.slice(0, at)), register };
    }
    default:
      throw bad(argument, text, `unknown address space '${space}'; spaces: ${ADDRESS_SPACES.join(', ')}`);
  }
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The canonical text of an address (what parseAddress reads back to the same address). */
export function formatAddress(address: Address): string {
  switch (address.space) {
    case 'mfn': {
      const whole = address.offset === 0 && address.length === PAGE_SIZE;
      if (whole) return `mfn:${address.mfn}`;
      return `mfn:${address.mfn}${address.offset === 0 ? '' : `+${hex(address.offset)}`}${address.length === 1 && address.offset !== 0 ? '' : `/${address.length}`}`;
    }
    case 'gpa': return `gpa:${address.domain}:${hex(address.gpa)}${lengthSuffix(address.length)}`;
    case 'linear': return `linear:${address.domain}.v${address.vcpu}:${hex(address.linear)}${lengthSuffix(address.length)}`;
    case 'iova': return `iova:${pciBdfFormat(address.bdf)}:${hex(address.iova)}${lengthSuffix(address.length)}`;
    case 'reg': return `reg:${address.domain}.v${address.vcpu}:${address.register}`;
  }
}

const lengthSuffix = (length: number): string => (length === 1 ? '' : `/${length}`);

/** Host bytes as an address: `mfn:321+0x10/16`. */
export function formatHostRange(range: HostRange): string {
  return formatAddress({ space: 'mfn', ...range });
}

/** Register bytes as an address: `reg:erin.v0:eax`, or the bytes of it (`reg:erin.v0:eax[1..2]`). */
export function formatRegister(register: RegisterBytes, names: ReadonlyMap<DomainId, string>): string {
  const base = `reg:${names.get(register.dom) ?? register.dom}.v${register.vcpu}`;
  const { slot, byte, length } = register;
  if (slot !== EFLAGS_SLOT) {
    if (byte === 0 && length === 4) return `${base}:${GPR32[slot]}`;
    if (byte === 0 && length === 2) return `${base}:${GPR16[slot]}`;
    if (slot < 4 && length === 1 && byte <= 1) return `${base}:${GPR8[slot + byte * 4]}`;
  }
  return `${base}:${slotName(slot)}[${byte}${length > 1 ? `..${byte + length - 1}` : ''}]`;
}

// ---- resolution at a seq -------------------------------------------------------------------

/** The domain a name or id designates in `state`; an InputError naming the domains there. */
export function domainAt(state: MachineState, text: string, argument: string, seq: Seq): Domain {
  const domains = [...state.domains.values()];
  const found = /^\d+$/.test(text) ? state.domains.get(Number(text)) : domains.filter((d) => d.name === text).at(-1);
  if (found === undefined) {
    const known = domains.map((d) => `${d.name} (${d.id})`).join(', ') || 'none yet';
    throw new InputError('argument', `${argument}: no domain '${text}' at seq ${seq}; domains then: ${known} (give another --at, or a domain by id)`);
  }
  return found;
}

function x86VcpuAt(state: MachineState, domainText: string, vcpu: number, argument: string, seq: Seq): { domain: Domain } {
  const domain = domainAt(state, domainText, argument, seq);
  if (domain.vcpus[vcpu]?.x86 == null) {
    const what = domain.kind === 'x86' ? `has vCPUs v0..v${domain.vcpus.length - 1}` : 'is a scripted guest (no x86 vCPU)';
    throw new InputError('argument', `${argument}: ${domain.name}.v${vcpu} is not an x86 vCPU at seq ${seq}: ${domain.name} ${what}`);
  }
  return { domain };
}

/**
 * The host frame a vCPU reaches at a linear address, as the processor would: its TLB first,
 * else a walk of the guest's page tables (read as the owner's plaintext) and the p2m (which
 * EPT and the shadow tables mirror). Nothing is filled or emitted.
 */
export function linearFrame(state: MachineState, domain: Domain, vcpu: number, linear: number): Mfn | undefined {
  const x86 = domain.vcpus[vcpu]?.x86;
  if (x86 == null) return undefined;
  const cached = x86.tlb.get(linear >>> 12);
  if (cached !== undefined) return cached.mfn;
  let gpa = linear;
  if ((x86.cpu.cr0 & CR0_PG) !== 0) {
    const port: WalkPort = {
      read32(address) {
        const mfn = domain.p2m.get(Math.floor(address / PAGE_SIZE));
        if (mfn === undefined) return { kind: 'exit', reason: 48, qualification: 0, gla: null, gpa: address };
        return Buffer.from(ownerPlaintext(state, mfn, address % PAGE_SIZE, 4)).readUInt32LE(0);
      },
      write32: () => undefined,
    };
    const walk = guestWalk(port, x86.cpu, linear, false);
    if ('kind' in walk) return undefined;
    gpa = walk.gpa;
  }
  return domain.p2m.get(Math.floor(gpa / PAGE_SIZE));
}

/** Splits [start, start+length) of a paged space at page boundaries, translating each page. */
function paged(start: number, length: number, translate: (page: number) => Mfn | string): HostRange[] | string {
  const ranges: HostRange[] = [];
  for (let at = 0; at < length;) {
    const address = start + at;
    const offset = address % PAGE_SIZE;
    const n = Math.min(length - at, PAGE_SIZE - offset);
    const mfn = translate(Math.floor(address / PAGE_SIZE));
    if (typeof mfn === 'string') return `${hex(address)} ${mfn}`;
    const last = ranges.at(-1);
    if (last !== undefined && last.mfn === mfn && last.offset + last.length === offset) last.length += n;
    else ranges.push({ mfn, offset, length: n });
    at += n;
  }
  return ranges;
}

/**
 * The bytes `address` designates in `state` (the state at `seq`): host ranges, or a
 * register's bytes. An InputError names what does not resolve and what would.
 */
export function resolveAddress(address: Address, state: MachineState, seq: Seq, argument = 'address'): Resolved {
  const text = formatAddress(address);
  const fail = (why: string): InputError => new InputError('argument', `${argument} ${text}: ${why} at seq ${seq} (give another --at, or name the bytes another way, like mfn:N)`);
  let ranges: HostRange[] | string;
  switch (address.space) {
    case 'mfn': {
      if (address.mfn >= state.config.frames) throw new InputError('argument', `${argument} ${text}: the machine has frames 0..${state.config.frames - 1}`);
      ranges = paged(address.mfn * PAGE_SIZE + address.offset, address.length, (page) => (page < state.config.frames ? page : 'is beyond the last frame'));
      break;
    }
    case 'gpa': {
      const domain = domainAt(state, address.domain, argument, seq);
      ranges = paged(address.gpa, address.length, (gfn) => domain.p2m.get(gfn) ?? `is not mapped in ${domain.name}'s p2m`);
      break;
    }
    case 'linear': {
      const { domain } = x86VcpuAt(state, address.domain, address.vcpu, argument, seq);
      ranges = paged(address.linear, address.length, (page) => linearFrame(state, domain, address.vcpu, page * PAGE_SIZE)
        ?? `does not translate for ${domain.name}.v${address.vcpu} (not in its TLB, its page tables or its p2m)`);
      break;
    }
    case 'iova': {
      const dom = state.io.xenVtd.devices.get(address.bdf) ?? state.io.vfs.find((vf) => vf.bdf === address.bdf)?.dom;
      if (dom === undefined && state.io.xenVtd.enabled) throw fail(`device ${pciBdfFormat(address.bdf)} is assigned to no domain`);
      ranges = paged(address.iova, address.length, (page) => iovaFrame(state, address.bdf, page));
      break;
    }
    case 'reg': {
      const { domain } = x86VcpuAt(state, address.domain, address.vcpu, argument, seq);
      const bytes = registerBytes(address.register)!;
      return { kind: 'register', register: { dom: domain.id, vcpu: address.vcpu, ...bytes } };
    }
  }
  if (typeof ranges === 'string') throw fail(ranges);
  return { kind: 'memory', ranges };
}

/** Where a device's DMA to `page` lands now: through the unit when remapping is on (its IOTLB first), else untranslated. */
function iovaFrame(state: MachineState, sid: number, page: number): Mfn | string {
  const iova = page * PAGE_SIZE;
  if (!state.io.xenVtd.enabled) return page < state.config.frames ? page : 'is beyond memory (remapping is off: an iova is a host address)';
  const { result } = vtdTranslate(state.io.vtd, hostPhysicalMemory(state), { sid, iova, write: false, size: 1 });
  if (result.kind === 'fault') return `faults in the IOMMU (reason 0x${result.reason.toString(16)})`;
  return Math.floor(result.hpa / PAGE_SIZE);
}
