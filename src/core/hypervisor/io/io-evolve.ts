/**
 * The fold of the I/O events: what each one changes in the machine state. Like `evolve`, it
 * decides nothing: table words, cache fills, register values and frames taken all come in
 * the events.
 */
import { assert } from '../../../events/errors.ts';
import type { Event, EventOf } from '../../../events/schema.ts';
import { NO_DOMAIN } from '../../../events/schema.ts';
import { vtdApply, type VtdEffect } from '../../hardware/iommu/index.ts';
import { pciApply } from '../../hardware/pci/index.ts';
import { PAGE_SIZE } from '../../machine/scenario.ts';
import type { MachineState } from '../../machine/state.ts';

export type IoEvent = Extract<Event, { kind:
  'pci.cfg' | 'pci.mmio' | 'vtd.op' | 'dma.request' | 'msi' | 'nic.vf' | 'nic.reg' | 'net.frame' | 'siom.buffer'
  | 'netback.copy' | 'netback.state' | 'wire.rx' }>;

/** PCI configuration mechanism #1's address port: the guest's write is the latch. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;

/** The effects a vtd.op, dma.request or msi event carries (JSON, "" for none). */
export function decodeVtdEffects(json: string): VtdEffect[] {
  return json === '' ? [] : (JSON.parse(json) as VtdEffect[]);
}

export function encodeVtdEffects(effects: readonly VtdEffect[]): string {
  return effects.length === 0 ? '' : JSON.stringify(effects);
}

export function evolveIo(state: MachineState, event: IoEvent): void {
  const io = state.io;
  switch (event.kind) {
    case 'pci.cfg':
      if (event.write && event.present) {
        pciApply(io.pci, { kind: 'pci.cfg', bdf: event.bdf, offset: event.offset, size: event.size, write: true, value: event.value, present: true });
      }
      return;
    case 'pci.mmio':
      // Device registers change through nic.reg; the bus folds what it owns (MSI-X tables).
      // A guest's write to its MSI-X table is trapped by Xen's vPCI: only Xen's (dom0's) lands.
      if (event.write && event.dom === 0) pciApply(io.pci, { kind: 'pci.mmio', bdf: event.bdf, bar: event.bar, offset: event.offset, size: event.size, write: true, value: event.value });
      return;
    case 'vtd.op': return applyVtdOp(state, event);
    case 'dma.request': return applyVtdEffects(state, decodeVtdEffects(event.effects));
    case 'msi':
      applyVtdEffects(state, decodeVtdEffects(event.effects));
      if (event.fault === 0 && event.dom !== NO_DOMAIN) requestInterrupt(state, event.dom, event.vcpu, event.vector);
      return;
    case 'nic.vf': {
      const regs = io.vfs.find((v) => v.vf === event.vf)?.regs ?? {};
      const vf = { vf: event.vf, bdf: event.bdf, dom: event.dom, mac: event.mac, vlan: event.vlan, spoofcheck: event.spoofcheck, regs: { ...regs } };
      io.vfs = [...io.vfs.filter((v) => v.vf !== event.vf), vf].sort((a, b) => a.vf - b.vf);
      return;
    }
    case 'nic.reg': {
      const vf = io.vfs.find((v) => v.vf === event.vf);
      assert(vf !== undefined, () => `nic.reg names VF ${event.vf}, which the PF driver never configured`);
      vf.regs[event.reg] = event.value;
      return;
    }
    case 'siom.buffer': {
      const buffers = event.dir === 'tx' ? io.siom.tx : io.siom.rx;
      const depth = (buffers.get(event.dom) ?? 0) + (event.op === 'enqueue' ? 1 : event.op === 'dequeue' ? -1 : 0);
      if (depth > 0) buffers.set(event.dom, depth);
      else buffers.delete(event.dom);
      return;
    }
    case 'netback.state': io.netbackUp = event.up; return;
    case 'wire.rx': io.wireNext = event.index + 1; return;
    case 'net.frame':
    case 'netback.copy':
      return;
  }
}

/** Xen's IOMMU programming: table frames taken or given back, table words, register effects. */
function applyVtdOp(state: MachineState, event: EventOf<'vtd.op'>): void {
  const xen = state.io.xenVtd;
  if (event.alloc.length > 0) {
    const taken = new Set(event.alloc);
    xen.freeFrames = xen.freeFrames.filter((mfn) => !taken.has(mfn));
  }
  for (const mfn of event.free) {
    // A table frame given back is cleared, so a later table starts from zeros.
    state.memory.delete(mfn);
    xen.freeFrames = [...xen.freeFrames, mfn].sort((a, b) => a - b);
  }
  writeXenWords(state, event.words);
  const effects = decodeVtdEffects(event.effects);
  applyVtdEffects(state, effects);
  applyXenVtdRecord(state, event, effects);
}

/**
 * Xen's record of what it programmed (vtd-driver.ts), from the op's name and fields: boot
 * takes [root table, IRT, invalidation queue, wait-status page] in that order; DID is the
 * domain id + 1; an IRTE op names its entry by the address of the words it wrote. The queue
 * tail is the last IQT Xen wrote.
 */
function applyXenVtdRecord(state: MachineState, event: EventOf<'vtd.op'>, effects: readonly VtdEffect[]): void {
  const xen = state.io.xenVtd;
  const dom = event.did - 1;
  switch (event.op) {
    case 'boot':
      xen.enabled = true;
      [xen.rootTable, xen.irt, xen.iq] = event.alloc.slice(0, 3).map((mfn) => mfn * PAGE_SIZE);
      break;
    case 'domain.create':
      xen.domains.set(dom, { did: event.did, slptptr: event.alloc[0] * PAGE_SIZE, frames: [...event.alloc] });
      break;
    case 'map': {
      const domain = xen.domains.get(dom);
      if (domain !== undefined && event.alloc.length > 0) xen.domains.set(dom, { ...domain, frames: [...domain.frames, ...event.alloc] });
      break;
    }
    case 'domain.free': xen.domains.delete(dom); break;
    case 'context.set':
      xen.devices.set(event.sid, dom);
      if (event.alloc.length > 0) xen.contextTables.set(event.sid >>> 8, event.alloc[0] * PAGE_SIZE);
      break;
    case 'context.clear': xen.devices.delete(event.sid); break;
    case 'irte.set':
      // words: the IRTE's low word (vector [23:16], xAPIC destination [47:40] = the vCPU), then its high word.
      xen.irtes.set((event.words[0] - xen.irt) / 16, { sid: event.sid, dom, vcpu: (event.words[2] >>> 8) & 0xff, vector: (event.words[1] >>> 16) & 0xff });
      break;
    case 'irte.clear': xen.irtes.delete((event.words[0] - xen.irt) / 16); break;
  }
  for (const effect of effects) {
    if (effect.kind === 'reg' && effect.name === 'iqt') xen.iqTail = effect.value >>> 4;
  }
}

/**
 * Writes 64-bit words ([hpa, low 32, high 32] triples) into Xen's own frames, in plaintext.
 * Pages are replaced, never changed in place (snapshots share them): each page touched is
 * copied once per call, however many of its words change.
 */
export function writeXenWords(state: MachineState, words: readonly number[]): void {
  const copies = new Map<number, DataView>();
  for (let i = 0; i + 2 < words.length; i += 3) {
    const hpa = words[i];
    const mfn = Math.floor(hpa / PAGE_SIZE);
    const offset = hpa % PAGE_SIZE;
    assert(offset % 8 === 0, () => `table word at 0x${hpa.toString(16)} is not 8-byte aligned`);
    let view = copies.get(mfn);
    if (view === undefined) {
      const page = state.memory.get(mfn);
      const bytes = page ? new Uint8Array(page.bytes) : new Uint8Array(PAGE_SIZE);
      state.memory.set(mfn, { bytes, writer: NO_DOMAIN });
      copies.set(mfn, (view = new DataView(bytes.buffer)));
    }
    view.setUint32(offset, words[i + 1] >>> 0, true);
    view.setUint32(offset + 4, words[i + 2] >>> 0, true);
  }
}

function applyVtdEffects(state: MachineState, effects: readonly VtdEffect[]): void {
  for (const effect of effects) {
    if (effect.kind === 'memory.write32') {
      const hpa = effect.hpa - (effect.hpa % 8);
      const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
      const view = page ? new DataView(page.bytes.buffer, page.bytes.byteOffset) : undefined;
      const old = [view?.getUint32(hpa % PAGE_SIZE, true) ?? 0, view?.getUint32((hpa % PAGE_SIZE) + 4, true) ?? 0];
      old[(effect.hpa % 8) / 4] = effect.value;
      writeXenWords(state, [hpa, old[0], old[1]]);
    } else {
      vtdApply(state.io.vtd, effect);
    }
  }
}

/** An interrupt for a vCPU: its vector joins the vCPU's requests (each vector once, ascending). */
function requestInterrupt(state: MachineState, dom: number, vcpu: number, vector: number): void {
  const x86 = state.domains.get(dom)?.vcpus[vcpu]?.x86;
  // A scripted vCPU has no local APIC: the interrupt is recorded and has nowhere to go.
  if (!x86 || x86.irr.includes(vector)) return;
  x86.irr = [...x86.irr, vector].sort((a, b) => a - b);
}
