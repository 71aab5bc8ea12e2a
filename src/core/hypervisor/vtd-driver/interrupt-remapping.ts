/**
 * Interrupt remapping as Xen programs it and the unit applies it: an IRTE per remapped MSI
 * (msiProgram), and the unit's interrupt path for a device's write to 0xFEEx_xxxx
 * (interruptRequest), recorded as an `msi` event; the fold puts the vector in the vCPU's
 * request register.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId, type EventOf } from '../../../events/schema.ts';
import {
  VTD_IRTE_SIZE, VTD_MSI_ADDRESS_BASE, vtdIecDescriptor, vtdIrte, vtdRemapInterrupt, vtdRemappableMsi,
} from '../../hardware/iommu/index.ts';
import { hasFlaw } from '../flaws.ts';
import type { XenVtd } from '../io/io-state.ts';
import { hostPhysicalMemory } from '../memory/host-frames.ts';
import type { Host, HostState } from '../state.ts';
import { applyVtdEffects, decodeVtdEffects, didOf, encodeVtdEffects, VtdOp, waitStatusAddress } from './vtd-op.ts';

/** IRTA.S = 7: 2^(7+1) = 256 IRTEs, one 4 KiB frame. */
export const IRTA_S = 7;

const IRT_ENTRIES = 2 ** (IRTA_S + 1);

/** The lowest IRTE index Xen has not handed out. */
function freeIrteIndex(xen: XenVtd): number {
  for (let index = 0; index < IRT_ENTRIES; index++) if (!xen.irtes.has(index)) return index;
  assert(false, 'the interrupt remapping table is full');
}

/**
 * Xen sets up a remapped MSI for device `bdf` to `dom`'s vCPU `vcpu` (its APIC id): the
 * lowest free IRTE (P, fixed, physical, the vector, SVT = 1 with SQ = 0 so only `bdf` may use
 * it), an index-selective IEC invalidation and a wait. Returns the remappable-format MSI to
 * program in the device. Without interrupt remapping: the compatibility format, nothing
 * recorded.
 */
export function msiProgram(host: Host, bdf: number, vector: number, dom: DomainId, vcpu: number): { address: number; data: number } {
  const xen = host.state.io.xenVtd;
  if (!xen.enabled) return { address: (VTD_MSI_ADDRESS_BASE | ((vcpu & 0xff) << 12)) >>> 0, data: vector & 0xff };
  const index = freeIrteIndex(xen);
  const op = new VtdOp(host);
  // The planted flaw sid-mask-wrong: SQ = 3 compares bus and device only, so every function
  // of the device (every VF of the NIC) passes the source-id check of this entry.
  const sq = hasFlaw(host.state, 'sid-mask-wrong') ? 3 : 0;
  op.write128(xen.irt + index * VTD_IRTE_SIZE, vtdIrte({ vector, destination: vcpu, svt: 1, sq, sid: bdf }));
  op.submit([vtdIecDescriptor({ global: false, index, im: 0 })]);
  op.wait(waitStatusAddress(xen));
  op.emit('irte.set', bdf, didOf(dom));
  return vtdRemappableMsi({ handle: index });
}

/**
 * The unit's interrupt path for a write of `data` at `address` by device `sid`. Remapped:
 * the IRTE names the vector and vCPU, Xen's record names the domain. Blocked: the fault
 * reason (0x20..0x26), recorded in the FRCD. Not remapped (vanilla, or compatibility format
 * let through): to whatever vCPU runs on the physical CPU the address names.
 */
export function interruptRequest(host: Host, sid: number, address: number, data: number): void {
  const { result, effects } = vtdRemapInterrupt(host.state.io.vtd, hostPhysicalMemory(host.state), { sid, address: address >>> 0, data: data >>> 0 });
  const base = { sid, address: address >>> 0, data: data >>> 0, effects: encodeVtdEffects(effects) };
  if (result.kind === 'fault') {
    host.emit('msi', { ...base, index: result.index, fault: result.reason, dom: NO_DOMAIN, vcpu: -1, vector: -1 });
    return;
  }
  if (result.index >= 0) {
    const irte = host.state.io.xenVtd.irtes.get(result.index);
    host.emit('msi', { ...base, index: result.index, fault: 0, dom: irte?.dom ?? NO_DOMAIN, vcpu: irte?.vcpu ?? -1, vector: result.vector });
    return;
  }
  // Not remapped (no interrupt remapping, or a compatibility-format MSI let through): the
  // message names a physical CPU, and Xen injects the vector into whatever vCPU runs there.
  // Nothing ties it to the device's domain: the interrupt-injection attack.
  const pcpu = host.state.sched.pcpus[result.destination];
  const dom = pcpu?.dom ?? NO_DOMAIN;
  host.emit('msi', { ...base, index: -1, fault: 0, dom, vcpu: dom === NO_DOMAIN ? -1 : pcpu.vcpu, vector: result.vector });
}

/** An interrupt for a vCPU: its vector joins the vCPU's requests (each vector once, ascending). */
function requestInterrupt(state: HostState, dom: number, vcpu: number, vector: number): void {
  const x86 = state.domains.get(dom)?.vcpus[vcpu]?.x86;
  // A scripted vCPU has no local APIC: the interrupt is recorded and has nowhere to go.
  if (!x86 || x86.irr.includes(vector)) return;
  x86.irr = [...x86.irr, vector].sort((a, b) => a - b);
}

/** msi: the unit's effects, and a remapped or injected interrupt joins the vCPU's requests. */
export function applyMsi(state: HostState, e: EventOf<'msi'>): void {
  applyVtdEffects(state, decodeVtdEffects(e.effects));
  if (e.fault === 0 && e.dom !== NO_DOMAIN) requestInterrupt(state, e.dom, e.vcpu, e.vector);
}
