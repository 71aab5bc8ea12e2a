import { NO_DOMAIN, NO_FRAME, type DomainId } from '../../../events/schema.ts';
import {
  VTD_CONTEXT_ENTRY_SIZE, VTD_IRTA_S_MASK, VTD_ROOT_ENTRY_SIZE, vtdReadContext, vtdReadIrte, vtdSourceIdValid, vtdWalkSecondLevel,
} from '../../hardware/iommu/index.ts';
import { pciBdfFormat } from '../../hardware/pci/index.ts';
import { PAGE_SIZE } from '../../hypervisor/config.ts';
import { hostPhysicalMemory } from '../../hypervisor/memory/host-frames.ts';
import { domainLabel, type HostState } from '../../hypervisor/state.ts';
import type { Breach, InvariantChecker } from './types.ts';

/**
 * What the VT-d unit would do, read from its tables in memory and not from the events that
 * wrote them: every second-level leaf a device's context entry leads to maps a frame of the
 * domain the PF driver assigned the device to (a device assigned to nobody reaches nothing),
 * and every interrupt remapping entry Xen keeps for a domain validates only devices of that
 * domain. Checked when Xen programs the unit (vtd.op, before it takes effect: the tables
 * as the previous operation left them) and when a device's assignment changes (nic.vf);
 * at each DMA, the requesting device's tables only.
 */
export const iommuTableConfined: InvariantChecker = {
  name: 'iommu-table-confined',
  rule: "Every leaf of a device's IOMMU tables maps a frame of the device's domain, and every interrupt remapping entry of a domain validates only that domain's devices.",
  kinds: ['vtd.op', 'nic.vf', 'dma.request'],
  check(state, event) {
    if (!state.io.xenVtd.enabled) return undefined;
    if (event.kind === 'dma.request') return deviceLeaves(state, event.sid);
    if (event.kind !== 'vtd.op' && event.kind !== 'nic.vf') return undefined;
    for (const sid of presentContexts(state)) {
      const found = deviceLeaves(state, sid);
      if (found !== undefined) return found;
    }
    return foreignIrte(state);
  },
};

/** The domain a device (routing id) is assigned to, as the PF driver configured its VF. */
function assignedDomain(state: HostState, sid: number): DomainId {
  return state.io.vfs.find((v) => v.bdf === sid)?.dom ?? NO_DOMAIN;
}

/** Every routing id whose root and context entries in memory are present: the devices the unit translates. */
function* presentContexts(state: HostState): Generator<number> {
  const rootTable = state.io.vtd.regs.rootTable;
  const root = frameBytes(state, rootTable);
  if (root === undefined) return;
  for (let bus = 0; bus < PAGE_SIZE / VTD_ROOT_ENTRY_SIZE; bus++) {
    if (!present(root, (rootTable % PAGE_SIZE) + bus * VTD_ROOT_ENTRY_SIZE)) continue;
    const context = frameBytes(state, entryAddress(root, (rootTable % PAGE_SIZE) + bus * VTD_ROOT_ENTRY_SIZE));
    if (context === undefined) continue;
    for (let devfn = 0; devfn < PAGE_SIZE / VTD_CONTEXT_ENTRY_SIZE; devfn++) {
      if (present(context, devfn * VTD_CONTEXT_ENTRY_SIZE)) yield (bus << 8) | devfn;
    }
  }
}

/** A leaf of device `sid`'s tables reaching a frame its domain does not own, as a breach. */
function deviceLeaves(state: HostState, sid: number): Breach | undefined {
  const memory = hostPhysicalMemory(state);
  const context = vtdReadContext(state.io.vtd, memory, sid);
  if (!context.ok || context.entry.tt !== 0) return undefined;
  const dom = assignedDomain(state, sid);
  for (const iova of candidateLeaves(state, context.entry.slptptr, context.entry.aw + 2, 0)) {
    // The unit's own walk confirms each candidate: rights stacked, reserved bits faulting.
    const walk = vtdWalkSecondLevel(memory, context.entry.slptptr, context.entry.aw, iova, 'any');
    if (walk.kind !== 'leaf') continue;
    const mfn = Math.floor(walk.hpa / PAGE_SIZE);
    const owner = state.ppt.get(mfn)?.owner ?? NO_DOMAIN;
    if (owner === dom && dom !== NO_DOMAIN) continue;
    const device = `device ${pciBdfFormat(sid)}${dom === NO_DOMAIN ? ' (assigned to nobody)' : ` of ${domainLabel(state, dom)}`}`;
    const whose = owner === NO_DOMAIN ? 'nobody' : domainLabel(state, owner);
    return { dom, mfn, detail: `the IOMMU tables of ${device} map iova 0x${iova.toString(16)} to frame ${mfn}, owned by ${whose}` };
  }
  return undefined;
}

/** Leaves under a table found, at most this many (the model's domains have a few hundred pages). */
const LEAVES_MAX = 4096;

/**
 * The iovas of present leaves under `table` at `level`, by a scan of the entries' R and W
 * bits (a level-1 entry, or one with PS at levels 2-3, is a leaf). Cheap: no 64-bit reads.
 */
function candidateLeaves(state: HostState, table: number, level: number, base: number, out: number[] = []): number[] {
  const bytes = frameBytes(state, table);
  if (bytes === undefined) return out;
  const span = 2 ** (12 + 9 * (level - 1));
  for (let i = 0; i < 512 && out.length < LEAVES_MAX; i++) {
    if (!present(bytes, i * 8)) continue;
    if (level === 1 || (level <= 3 && (bytes[i * 8] & 0x80) !== 0)) out.push(base + i * span);
    else if (level > 1) candidateLeaves(state, entryAddress(bytes, i * 8), level - 1, base + i * span, out);
  }
  return out;
}

/** An interrupt remapping entry in memory that lets a device of another domain (or of none) interrupt the domain Xen keeps it for. */
function foreignIrte(state: HostState): Breach | undefined {
  const vtd = state.io.vtd;
  const memory = hostPhysicalMemory(state);
  const entries = 2 ** ((vtd.regs.irtaActive & VTD_IRTA_S_MASK) + 1);
  for (const [index, kept] of state.io.xenVtd.irtes) {
    if (index >= entries) continue;
    const irte = vtdReadIrte(vtd, memory, index);
    if (!irte.ok) continue;
    for (const vf of state.io.vfs) {
      if (vf.dom === kept.dom || !vtdSourceIdValid(irte.entry, vf.bdf)) continue;
      const device = `device ${pciBdfFormat(vf.bdf)}${vf.dom === NO_DOMAIN ? ' (assigned to nobody)' : ` of ${domainLabel(state, vf.dom)}`}`;
      return { dom: kept.dom, mfn: NO_FRAME, detail: `interrupt remapping entry ${index} of ${domainLabel(state, kept.dom)} (vector 0x${irte.entry.vector.toString(16)}) passes the source-id check for ${device}` };
    }
  }
  return undefined;
}

function frameBytes(state: HostState, hpa: number): Uint8Array | undefined {
  return hpa < 0 ? undefined : state.memory.get(Math.floor(hpa / PAGE_SIZE))?.bytes;
}

/** Bit 0 or 1 of the entry at `offset`: present (a root or context entry's P; a second-level entry's R or W). */
function present(bytes: Uint8Array, offset: number): boolean {
  return (bytes[offset] & 3) !== 0;
}

/** The table address in bits 12-45 of the little-endian 64-bit entry at `offset`. */
function entryAddress(bytes: Uint8Array, offset: number): number {
  const low = (bytes[offset + 1] & 0xf0) * 2 ** 8 + bytes[offset + 2] * 2 ** 16 + bytes[offset + 3] * 2 ** 24;
  const high = bytes[offset + 4] + (bytes[offset + 5] & 0x3f) * 2 ** 8;
  return high * 2 ** 32 + low;
}
