/**
 * A PCI segment: functions addressed by routing ID (bus << 8 | device << 3 | function; one
 * flat space for every bus number, no bridges), reached through configuration mechanism #1
 * (ports 0xCF8/0xCFC, PCI 3.0 3.2.2.3.2) or directly by offset (the 4 KiB path, ECAM-like),
 * and through the BAR ranges the functions decode.
 *
 * The decider/fold split of the machine, in small: every access is a pure function
 * `(bus, input) -> { result, effects }` that changes nothing; `pciApply(bus, effect)` is where
 * state changes (the CONFIG_ADDRESS latch, config writes, MSI-X table writes, pending bits),
 * so a recording replays by folding the effects without deciding again. Effects of reads
 * are observations: the fold ignores them.
 */
import { assert } from '../../../events/errors.ts';
import { pciFunctionRead, pciFunctionScratch, pciFunctionWrite } from './config-access.ts';
import { pciVfRid } from './config-image.ts';
import {
  PCI_BDF_MAX, PCI_NO_BDF, pciBdfFormat, pciFunctionBars, pciGetLe, pciSriovMemoryEnabled, pciSriovVfBars, type Bdf,
  type PciBarInfo, type PciFunction,
} from './config-space.ts';
import {
  pciMsiAnyPending, pciMsiPending, pciMsiReleasable, pciMsiSetPending, pciMsixRead, pciMsixRegion, pciMsixWrite, pciSignalDecide,
  type PciMsiMechanism, type PciMsiMessage, type PciSignal,
} from './msi.ts';
import {
  PCI_CFG_SPACE_EXP_SIZE, PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG_ADDRESS_ENABLE,
  PCI_CONFIG_ADDRESS_FUNCTION_SHIFT, PCI_CONFIG_ADDRESS_REGISTER_MASK, PCI_CONFIG_ADDRESS_WRITABLE, PCI_CONFIG_DATA_PORT,
  PCI_CONFIG_DATA_PORTS, PCI_DEVICE_ID, PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_DID, PCI_VENDOR_ID,
} from './pci-regs.ts';

export interface PciBus {
  /** CONFIG_ADDRESS (port 0xCF8) as last written, reserved bits cleared. */
  configAddress: number;
  /** PFs and ordinary functions by routing ID; VFs live in their PF's `sriov.vfs`. */
  functions: Map<Bdf, PciFunction>;
}

// ---- effects -------------------------------------------------------------------------------

/** A configuration read or write; the machine logs it as a `pci.cfg` event. */
export interface PciCfgEffect {
  kind: 'pci.cfg';
  /** PCI_NO_BDF (-1) when CONFIG_ADDRESS had its enable bit clear: no configuration cycle. */
  bdf: Bdf;
  offset: number;
  /** Bytes that reached configuration space (1..4; fewer than asked when past port 0xCFF). */
  size: number;
  write: boolean;
  /** Written, or read (all ones when absent). */
  value: number;
  /** Whether a function claimed the cycle. */
  present: boolean;
}

/** A write of CONFIG_ADDRESS (port 0xCF8): the latch the data port decodes. */
export interface PciCfgAddressEffect {
  kind: 'pci.cfg.address';
  value: number;
}

/** A BAR memory or I/O access; the machine logs it as a `pci.mmio` event. */
export interface PciMmioEffect {
  kind: 'pci.mmio';
  bdf: Bdf;
  bar: number;
  offset: number;
  size: number;
  write: boolean;
  value: number;
}

/** The function set or cleared a pending bit (MSI Pending Bits or MSI-X PBA). */
export interface PciMsiPendingEffect {
  kind: 'pci.msi.pending';
  bdf: Bdf;
  mechanism: PciMsiMechanism;
  vector: number;
  pending: boolean;
}

export type PciEffect = PciCfgEffect | PciCfgAddressEffect | PciMmioEffect | PciMsiPendingEffect;

export interface PciOutcome<T> {
  result: T;
  effects: PciEffect[];
}

/** A write may release messages: pending vectors it unmasked (or enabled) are sent at once. */
export interface PciWriteResult {
  messages: PciMsiMessage[];
}

// ---- the bus and its functions -------------------------------------------------------------

export function pciBusCreate(functions: PciFunction[] = []): PciBus {
  const bus: PciBus = { configAddress: 0, functions: new Map() };
  for (const fn of functions) pciBusAdd(bus, fn);
  return bus;
}

/** Routing IDs a PF's VFs could take, VF 1..TotalVFs. */
function potentialVfRids(pf: PciFunction): Bdf[] {
  if (pf.sriov === undefined) return [];
  const total = pciGetLe(pf.config, pf.sriov.capOffset + PCI_SRIOV_TOTAL_VF, 2);
  return Array.from({ length: total }, (_, n) => pciVfRid(pf, n + 1));
}

/**
 * Plugs a function in (machine construction, not an event). Routing IDs are unique, the VFs
 * a PF could ever enable included, and fit in 16 bits.
 */
export function pciBusAdd(bus: PciBus, fn: PciFunction): void {
  assert(fn.vf === undefined, () => `${pciBdfFormat(fn.bdf)} is a VF: VFs come from their PF's VF Enable`);
  const taken = new Set<Bdf>();
  for (const other of bus.functions.values()) {
    taken.add(other.bdf);
    for (const rid of potentialVfRids(other)) taken.add(rid);
  }
  const mine = [fn.bdf, ...potentialVfRids(fn)];
  for (const rid of mine) {
    assert(rid <= PCI_BDF_MAX, () => `${pciBdfFormat(fn.bdf)}: a VF routing ID 0x${rid.toString(16)} exceeds 16 bits`);
    assert(!taken.has(rid), () => `${pciBdfFormat(fn.bdf)}: routing ID ${pciBdfFormat(rid)} is taken`);
    taken.add(rid);
  }
  bus.functions.set(fn.bdf, fn);
}

/** The function at a routing ID: a PF or ordinary function, or a VF that exists now. */
export function pciFunctionAt(bus: PciBus, bdf: Bdf): PciFunction | undefined {
  const direct = bus.functions.get(bdf);
  if (direct !== undefined) return direct;
  for (const pf of bus.functions.values()) {
    const vfs = pf.sriov?.vfs;
    if (vfs === undefined || vfs.length === 0) continue;
    const first = vfs[0].bdf;
    const stride = vfs.length > 1 ? vfs[1].bdf - first : 1;
    const index = (bdf - first) / stride;
    if (Number.isInteger(index) && index >= 0 && index < vfs.length) {
      assert(vfs[index].bdf === bdf, () => `VF table of ${pciBdfFormat(pf.bdf)} out of order`);
      return vfs[index];
    }
  }
  return undefined;
}

/** Every function present now, VFs included, by routing ID. */
export function pciFunctionsPresent(bus: PciBus): PciFunction[] {
  const all: PciFunction[] = [];
  for (const fn of bus.functions.values()) {
    all.push(fn);
    if (fn.sriov !== undefined) all.push(...fn.sriov.vfs);
  }
  return all.sort((a, b) => a.bdf - b.bdf);
}

/**
 * What virtualization software presents as a VF's identity (PCIe 9.3.4.1.1-2): the PF's
 * Vendor ID and its VF Device ID, since the VF's own registers read 0xFFFF. For other
 * functions, their own registers.
 */
export function pciIdentityOf(bus: PciBus, bdf: Bdf): { vendorId: number; deviceId: number } | undefined {
  const fn = pciFunctionAt(bus, bdf);
  if (fn === undefined) return undefined;
  if (fn.vf === undefined) return { vendorId: pciGetLe(fn.config, PCI_VENDOR_ID, 2), deviceId: pciGetLe(fn.config, PCI_DEVICE_ID, 2) };
  const pf = bus.functions.get(fn.vf.pf)!;
  return {
    vendorId: pciGetLe(pf.config, PCI_VENDOR_ID, 2),
    deviceId: pciGetLe(pf.config, pf.sriov!.capOffset + PCI_SRIOV_VF_DID, 2),
  };
}

/** Whether the function may master the bus (DMA, MSI writes): its own Bus Master Enable. */
export function pciBusMasterEnabled(bus: PciBus, bdf: Bdf): boolean {
  const fn = pciFunctionAt(bus, bdf);
  return fn !== undefined && (pciGetLe(fn.config, PCI_COMMAND, 2) & PCI_COMMAND_MASTER) !== 0;
}

// ---- configuration access ------------------------------------------------------------------

function allOnes(size: number): number {
  return 2 ** (8 * size) - 1;
}

/** The low `size` bytes of an integer, unsigned. */
function truncate(value: number, size: number): number {
  assert(Number.isInteger(value), () => `access value ${value}`);
  return (value >>> 0) % 2 ** (8 * size);
}

function checkAccess(offset: number, size: number): void {
  assert(size === 1 || size === 2 || size === 3 || size === 4, () => `config access of ${size} bytes`);
  assert(Number.isInteger(offset) && offset >= 0 && offset + size <= PCI_CFG_SPACE_EXP_SIZE,
    () => `config access of ${size} bytes at 0x${offset.toString(16)}`);
}

/** A configuration read by routing ID and offset (0..4095); all ones from an absent function. */
export function pciConfigRead(bus: PciBus, bdf: Bdf, offset: number, size: number): PciOutcome<number> {
  checkAccess(offset, size);
  const fn = pciFunctionAt(bus, bdf);
  const value = fn === undefined ? allOnes(size) : pciFunctionRead(fn, offset, size);
  return { result: value, effects: [{ kind: 'pci.cfg', bdf, offset, size, write: false, value, present: fn !== undefined }] };
}

/** Messages a change to `fn` would release, with the effects that clear their pending bits. */
function released(fn: PciFunction, change: (scratch: PciFunction) => void): PciOutcome<PciWriteResult> {
  if (!pciMsiAnyPending(fn)) return { result: { messages: [] }, effects: [] };
  const scratch = pciFunctionScratch(fn);
  change(scratch);
  const messages = pciMsiReleasable(scratch);
  const effects: PciEffect[] = messages.map((m) => ({
    kind: 'pci.msi.pending', bdf: fn.bdf, mechanism: m.mechanism, vector: m.vector, pending: false,
  }));
  return { result: { messages }, effects };
}

/** A configuration write by routing ID and offset; dropped silently when nothing is there. */
export function pciConfigWrite(bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): PciOutcome<PciWriteResult> {
  checkAccess(offset, size);
  const v = truncate(value, size);
  const fn = pciFunctionAt(bus, bdf);
  const effect: PciCfgEffect = { kind: 'pci.cfg', bdf, offset, size, write: true, value: v, present: fn !== undefined };
  if (fn === undefined) return { result: { messages: [] }, effects: [effect] };
  const release = released(fn, (scratch) => pciFunctionWrite(scratch, offset, size, v));
  return { result: release.result, effects: [effect, ...release.effects] };
}

/** Port 0xCF8, a 32-bit write (byte and word accesses to 0xCF8-0xCFB are not CONFIG_ADDRESS). */
export function pciConfigAddressWrite(_bus: PciBus, value: number): PciOutcome<undefined> {
  assert(Number.isInteger(value), () => `CONFIG_ADDRESS value ${value}`);
  return { result: undefined, effects: [{ kind: 'pci.cfg.address', value: (value & PCI_CONFIG_ADDRESS_WRITABLE) >>> 0 }] };
}

/** Port 0xCF8, a 32-bit read: the latch, reserved bits as 0. */
export function pciConfigAddressRead(bus: PciBus): number {
  return bus.configAddress;
}

interface DataPortTarget {
  enabled: boolean;
  bdf: Bdf;
  offset: number;
  /** Bytes of the access at 0xCFC..0xCFF: the rest is beyond the data port. */
  inside: number;
}

/**
 * Which function and register a data-port access names: device/function/bus from bits
 * 23:8, the dword from bits 7:2, the byte within it from the port (0xCFC..0xCFF).
 */
function dataPortTarget(bus: PciBus, port: number, size: number): DataPortTarget {
  assert(port >= PCI_CONFIG_DATA_PORT && port < PCI_CONFIG_DATA_PORT + PCI_CONFIG_DATA_PORTS, () => `port 0x${port.toString(16)} is not a data port`);
  assert(size === 1 || size === 2 || size === 4, () => `data port access of ${size} bytes`);
  const address = bus.configAddress;
  const byte = port - PCI_CONFIG_DATA_PORT;
  return {
    enabled: (address & PCI_CONFIG_ADDRESS_ENABLE) !== 0,
    // Bus 23:16, device 15:11 and function 10:8 sit side by side: bits 23:8 are the routing ID.
    bdf: (address >>> PCI_CONFIG_ADDRESS_FUNCTION_SHIFT) & 0xffff,
    offset: (address & PCI_CONFIG_ADDRESS_REGISTER_MASK) + byte,
    inside: Math.min(size, PCI_CONFIG_DATA_PORTS - byte),
  };
}

/**
 * A read of port 0xCFC..0xCFF of 1, 2 or 4 bytes. With the enable bit clear no configuration
 * cycle happens and the read floats to all ones (effect with bdf PCI_NO_BDF, present false).
 * Bytes of an access that run past 0xCFF are not configuration data: they read as all ones.
 */
export function pciConfigDataRead(bus: PciBus, port: number, size: number): PciOutcome<number> {
  const t = dataPortTarget(bus, port, size);
  const beyond = allOnes(size) - allOnes(t.inside);
  if (!t.enabled) {
    const effect: PciCfgEffect = { kind: 'pci.cfg', bdf: PCI_NO_BDF, offset: t.offset, size: t.inside, write: false, value: allOnes(t.inside), present: false };
    return { result: allOnes(size), effects: [effect] };
  }
  const read = pciConfigRead(bus, t.bdf, t.offset, t.inside);
  return { result: read.result + beyond, effects: read.effects };
}

/** A write of port 0xCFC..0xCFF; the bytes that land in 0xCFC..0xCFF are written. */
export function pciConfigDataWrite(bus: PciBus, port: number, size: number, value: number): PciOutcome<PciWriteResult> {
  const t = dataPortTarget(bus, port, size);
  const v = truncate(value, t.inside);
  if (!t.enabled) {
    const effect: PciCfgEffect = { kind: 'pci.cfg', bdf: PCI_NO_BDF, offset: t.offset, size: t.inside, write: true, value: v, present: false };
    return { result: { messages: [] }, effects: [effect] };
  }
  return pciConfigWrite(bus, t.bdf, t.offset, t.inside, v);
}

// ---- BAR decoding --------------------------------------------------------------------------

/** A range a function decodes now. */
export interface PciBarRange {
  bdf: Bdf;
  /** BAR index as the function's driver knows it (a VF's BAR n is the PF's VF BAR n). */
  bar: number;
  space: 'mem' | 'io';
  base: number;
  sizeBytes: number;
  prefetchable: boolean;
  is64: boolean;
}

/** No x86 CPU addresses more than 52 physical bits; x86 port space is 64 KiB. */
export const PCI_MEM_DECODE_LIMIT = 2 ** 52;
export const PCI_IO_DECODE_LIMIT = 0x10000;

function decodable(info: PciBarInfo): boolean {
  // A BAR left at 0 is unassigned (as firmware and QEMU's PC machines treat it), not a range.
  if (info.base === 0) return false;
  const limit = info.space === 'mem' ? PCI_MEM_DECODE_LIMIT : PCI_IO_DECODE_LIMIT;
  return info.base + info.sizeBytes <= limit;
}

/**
 * The ranges decoded now, by routing ID then BAR: a function's memory BARs while its Memory
 * Space Enable is set, its I/O BARs while I/O Space Enable is set; VF n's BAR i at the PF's
 * VF BAR i + (n - 1) * size while the PF has VF Enable and VF MSE set (PCIe 9.3.3.14).
 */
export function pciBarRanges(bus: PciBus): PciBarRange[] {
  const ranges: PciBarRange[] = [];
  const push = (bdf: Bdf, bar: number, info: PciBarInfo): void => {
    if (decodable(info)) ranges.push({ bdf, bar, space: info.space, base: info.base, sizeBytes: info.sizeBytes, prefetchable: info.prefetchable, is64: info.is64 });
  };
  for (const fn of pciFunctionsPresent(bus)) {
    if (fn.vf !== undefined) {
      const pf = bus.functions.get(fn.vf.pf)!;
      if (!pciSriovMemoryEnabled(pf)) continue;
      for (const { index, info } of pciSriovVfBars(pf)) {
        push(fn.bdf, index, { ...info, base: info.base + (fn.vf.number - 1) * info.sizeBytes });
      }
      continue;
    }
    const command = pciGetLe(fn.config, PCI_COMMAND, 2);
    for (const { index, info } of pciFunctionBars(fn)) {
      const enable = info.space === 'mem' ? PCI_COMMAND_MEMORY : PCI_COMMAND_IO;
      if ((command & enable) !== 0) push(fn.bdf, index, info);
    }
  }
  return ranges;
}

/** Where an access lands: function, BAR and offset inside the BAR. */
export interface PciBarHit {
  bdf: Bdf;
  bar: number;
  offset: number;
}

function lookup(bus: PciBus, space: 'mem' | 'io', address: number): PciBarHit | undefined {
  // Overlapping BARs are a programming error with undefined results: the lowest BDF wins.
  for (const r of pciBarRanges(bus)) {
    if (r.space === space && address >= r.base && address < r.base + r.sizeBytes) {
      return { bdf: r.bdf, bar: r.bar, offset: address - r.base };
    }
  }
  return undefined;
}

/** The function and BAR a host-physical address decodes to, if any (MMIO routing). */
export function pciMmioLookup(bus: PciBus, hpa: number): PciBarHit | undefined {
  return lookup(bus, 'mem', hpa);
}

/** The function and I/O BAR a port decodes to, if any. */
export function pciIoLookup(bus: PciBus, port: number): PciBarHit | undefined {
  return lookup(bus, 'io', port);
}

// ---- BAR memory the PCI layer owns: the MSI-X table and PBA ---------------------------------

/**
 * An MMIO read of 1, 2 or 4 bytes. The MSI-X table and PBA are answered here; anything else in
 * a BAR belongs to the device model (`value` undefined, the hit says where). `hit` undefined:
 * no function decodes the address.
 */
export function pciMmioRead(bus: PciBus, hpa: number, size: number): PciOutcome<{ hit: PciBarHit | undefined; value: number | undefined }> {
  assert(size === 1 || size === 2 || size === 4, () => `MMIO read of ${size} bytes`);
  const hit = pciMmioLookup(bus, hpa);
  if (hit === undefined) return { result: { hit, value: undefined }, effects: [] };
  const fn = pciFunctionAt(bus, hit.bdf)!;
  const region = pciMsixRegion(fn, hit.bar, hit.offset);
  if (region === undefined) return { result: { hit, value: undefined }, effects: [] };
  const value = pciMsixRead(fn, region.region, region.offset, size);
  return { result: { hit, value }, effects: [{ kind: 'pci.mmio', bdf: hit.bdf, bar: hit.bar, offset: hit.offset, size, write: false, value }] };
}

/**
 * An MMIO write. Into the MSI-X table it is applied here (and may release pending vectors);
 * into the PBA it is ignored (read-only); elsewhere `handled` is false for the device model.
 */
export function pciMmioWrite(bus: PciBus, hpa: number, size: number, value: number): PciOutcome<{ hit: PciBarHit | undefined; handled: boolean; messages: PciMsiMessage[] }> {
  assert(size === 1 || size === 2 || size === 4, () => `MMIO write of ${size} bytes`);
  const hit = pciMmioLookup(bus, hpa);
  if (hit === undefined) return { result: { hit, handled: false, messages: [] }, effects: [] };
  const fn = pciFunctionAt(bus, hit.bdf)!;
  const region = pciMsixRegion(fn, hit.bar, hit.offset);
  if (region === undefined) return { result: { hit, handled: false, messages: [] }, effects: [] };
  const v = truncate(value, size);
  const effect: PciMmioEffect = { kind: 'pci.mmio', bdf: hit.bdf, bar: hit.bar, offset: hit.offset, size, write: true, value: v };
  if (region.region === 'pba') return { result: { hit, handled: true, messages: [] }, effects: [effect] };
  const release = released(fn, (scratch) => pciMsixWrite(scratch, region.offset, size, v));
  return { result: { hit, handled: true, messages: release.result.messages }, effects: [effect, ...release.effects] };
}

// ---- interrupts ----------------------------------------------------------------------------

/**
 * The function's device logic raises `vector`: the message it sends, or the pending bit it
 * sets, or INTx, or why nothing happens (see PciSignal).
 */
export function pciMsiSignal(bus: PciBus, bdf: Bdf, vector: number): PciOutcome<PciSignal> {
  const fn = pciFunctionAt(bus, bdf);
  if (fn === undefined) return { result: { kind: 'dropped', reason: 'absent' }, effects: [] };
  const signal = pciSignalDecide(fn, vector);
  if (signal.kind !== 'pending' || pciMsiPending(fn, signal.mechanism, vector)) return { result: signal, effects: [] };
  return { result: signal, effects: [{ kind: 'pci.msi.pending', bdf, mechanism: signal.mechanism, vector, pending: true }] };
}

// ---- the fold ------------------------------------------------------------------------------

function functionOf(bus: PciBus, bdf: Bdf): PciFunction {
  const fn = pciFunctionAt(bus, bdf);
  assert(fn !== undefined, () => `PCI effect names ${pciBdfFormat(bdf)}, which is not present`);
  return fn;
}

/** Applies one effect (mutation, as the machine's evolve does; works on an immer draft). */
export function pciApply(bus: PciBus, effect: PciEffect): void {
  switch (effect.kind) {
    case 'pci.cfg.address':
      bus.configAddress = effect.value;
      return;
    case 'pci.cfg':
      if (effect.write && effect.present) pciFunctionWrite(functionOf(bus, effect.bdf), effect.offset, effect.size, effect.value);
      return;
    case 'pci.mmio': {
      if (!effect.write) return;
      const fn = pciFunctionAt(bus, effect.bdf);
      const region = fn === undefined ? undefined : pciMsixRegion(fn, effect.bar, effect.offset);
      // Other BAR memory is the device model's to fold.
      if (fn !== undefined && region?.region === 'table') pciMsixWrite(fn, region.offset, effect.size, effect.value);
      return;
    }
    case 'pci.msi.pending':
      pciMsiSetPending(functionOf(bus, effect.bdf), effect.mechanism, effect.vector, effect.pending);
      return;
  }
}

export function pciApplyAll(bus: PciBus, effects: readonly PciEffect[]): void {
  for (const effect of effects) pciApply(bus, effect);
}

/** Decide and apply at once, for a live machine (or a test) that keeps no log. */
export function pciRun<T>(bus: PciBus, outcome: PciOutcome<T>): T {
  pciApplyAll(bus, outcome.effects);
  return outcome.result;
}

