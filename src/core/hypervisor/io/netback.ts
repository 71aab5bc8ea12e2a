/**
 * Stock Xen's I/O path (the vanilla profile): the guest's network device is dom0's backend,
 * netback, emulating the VF's registers. There is no VT-d: dom0 reaches the guest's rings
 * and buffers with grant copies through the guest's p2m, and sees them as stored, which in
 * vanilla is plaintext. Every copy is a `netback.copy` event: dom0 holds those bytes.
 *
 * Frames cross dom0's software bridge, which does not check source MACs (a stock vif), and a
 * dom0 fault (`netbackUp` false) stops every guest's I/O at once.
 */
import { NO_DOMAIN, NO_FRAME, type EventOf, type Gpa } from '../../../events/schema.ts';
import type { Verdict } from '../../hardware/nic/switch.ts';
import type { NicVf } from '../../hardware/nic/vf.ts';
import { PAGE_SIZE } from '../config.ts';
import { writeFrameWithKey } from '../memory/guest-memory.ts';
import type { Host, HostState } from '../state.ts';

interface GrantPiece {
  gfn: number;
  offset: number;
  at: number;
  length: number;
  mfn: number;
}

/** A grant copy is per page: the guest's p2m names each frame (NO_FRAME: not mapped). */
function grantPieces(host: Host, vf: NicVf, gpa: Gpa, length: number): GrantPiece[] {
  const p2m = host.state.domains.get(vf.dom)?.p2m;
  const pieces: GrantPiece[] = [];
  for (let at = 0; at < length;) {
    const address = gpa + at;
    const offset = address % PAGE_SIZE;
    const n = Math.min(length - at, PAGE_SIZE - offset);
    const gfn = Math.floor(address / PAGE_SIZE);
    pieces.push({ gfn, offset, at, length: n, mfn: p2m?.get(gfn) ?? NO_FRAME });
    at += n;
  }
  return pieces;
}

/**
 * dom0 copies guest memory out (a tx request, a ring descriptor): the bytes as stored, which
 * in vanilla is the guest's plaintext. Undefined when a page is not mapped (the grant fails).
 */
export function netbackRead(host: Host, vf: NicVf, gpa: Gpa, length: number, dir: 'tx' | 'rx'): Uint8Array | undefined {
  const pieces = grantPieces(host, vf, gpa, length);
  if (pieces.some((p) => p.mfn === NO_FRAME)) return undefined;
  const out = new Uint8Array(length);
  for (const p of pieces) {
    const page = host.state.memory.get(p.mfn);
    const data = page === undefined ? new Uint8Array(p.length) : page.bytes.slice(p.offset, p.offset + p.length);
    host.emit('netback.copy', { dom: vf.dom, dir, gfn: p.gfn, offset: p.offset, data });
    out.set(data, p.at);
  }
  return out;
}

/**
 * dom0 writes guest memory: a frame is a grant copy into the guest's buffer (netback.copy,
 * then the write); a ring response (`copy` false) is dom0 filling the shared ring. The bytes
 * land as the guest's own (written on its behalf, under its key if it has one).
 */
export function netbackWrite(host: Host, vf: NicVf, gpa: Gpa, data: Uint8Array, dir: 'tx' | 'rx', copy: boolean): boolean {
  const pieces = grantPieces(host, vf, gpa, data.length);
  if (pieces.some((p) => p.mfn === NO_FRAME)) return false;
  for (const p of pieces) {
    const bytes = data.slice(p.at, p.at + p.length);
    if (copy) host.emit('netback.copy', { dom: vf.dom, dir, gfn: p.gfn, offset: p.offset, data: bytes });
    writeFrameWithKey(host, vf.dom, vf.dom, p.gfn * PAGE_SIZE + p.offset, p.mfn, p.offset, bytes);
  }
  return true;
}

/** dom0 has the guest's frame: it goes to the bridge. */
export function netbackTransmit(host: Host, vf: NicVf, frame: Uint8Array): Verdict {
  host.emit('net.frame', { at: 'netback.tx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return 'ok';
}

/** The bridge hands dom0 a frame for a guest's vif: dom0 holds it before copying it in. */
export function netbackReceive(host: Host, vf: NicVf, frame: Uint8Array): Verdict {
  host.emit('net.frame', { at: 'netback.rx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return 'ok';
}

/**
 * netback notifies the guest (an event channel Xen binds to the guest's emulated MSI-X
 * entry): Xen injects the vector the guest programmed into the vCPU its address names
 * (APIC id = vCPU). No device sends it, so no interrupt remapping is involved; a
 * destination the domain does not have reaches nobody.
 */
export function netbackNotify(host: Host, vf: NicVf, address: number, data: number): void {
  const apicId = (address >>> 12) & 0xff;
  const vcpus = host.state.domains.get(vf.dom)?.vcpus.length ?? 0;
  const dom = apicId < vcpus ? vf.dom : NO_DOMAIN;
  host.emit('msi', { sid: vf.bdf, address: address >>> 0, data: data >>> 0, index: -1, fault: 0, dom, vcpu: dom === NO_DOMAIN ? -1 : apicId, vector: data & 0xff, effects: '' });
}

/** netback.state: dom0's backend went down (or came back). */
export function applyNetbackState(state: HostState, e: EventOf<'netback.state'>): void {
  state.io.netbackUp = e.up;
}
