/**
 * SIOM, the paper's Secure I/O Management (figure 3), the secure profile's I/O path: dom0 is
 * not on it. The VF moves bytes to and from its guest's memory by DMA through the IOMMU (SMM
 * decrypts and encrypts with the owner's key); frames pass through per-domain tx and rx
 * buffers, each frame tagged with its domain:
 *
 *   transmit: guest ring -> DMA -> tx buffer (enqueue, tagged) -> MUX (dequeue) ->
 *             device transmit controller (tag == the VF's domain?) -> switch
 *   receive:  switch -> device receive controller -> DEMUX -> rx buffer of the target domain
 *             (enqueue, tagged) -> I/O-bus receive controller (dequeue, tag == the receiving
 *             VF's domain?) -> DMA -> guest ring
 *
 * The buffers are drained within the step that fills them: the state keeps their depth only.
 */
import type { DomainId, EventOf } from '../../../events/schema.ts';
import type { Verdict } from '../../hardware/nic/switch.ts';
import type { NicVf } from '../../hardware/nic/vf.ts';
import type { Host, HostState } from '../state.ts';

/**
 * The tag a frame gets as it enters a buffer: the domain whose VF carried it in or out.
 * One named place, so that a planted flaw can mis-tag and the controllers' checks show it.
 */
export function siomTag(vf: NicVf): DomainId {
  return vf.dom;
}

/** The controllers' check: a frame may leave a buffer only for the domain it is tagged with. */
export function siomTagMatches(tag: DomainId, vf: NicVf): boolean {
  return tag === vf.dom;
}

/** A buffer hands the frame on: dequeue, then the controller's tag check (reject on mismatch). */
function dequeueChecked(host: Host, vf: NicVf, dir: 'tx' | 'rx', tag: DomainId, len: number): Verdict {
  host.emit('siom.buffer', { dom: vf.dom, dir, op: 'dequeue', tag, len });
  if (siomTagMatches(tag, vf)) return 'ok';
  host.emit('siom.buffer', { dom: vf.dom, dir, op: 'reject', tag, len });
  return 'tag-mismatch';
}

/**
 * A frame the VF fetched from its guest: into the domain's tx buffer, tagged; the MUX selects
 * it; the device transmit controller checks the tag against the VF's domain.
 */
export function siomTransmit(host: Host, vf: NicVf, frame: Uint8Array): Verdict {
  const tag = siomTag(vf);
  host.emit('siom.buffer', { dom: vf.dom, dir: 'tx', op: 'enqueue', tag, len: frame.length });
  host.emit('net.frame', { at: 'siom.tx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return dequeueChecked(host, vf, 'tx', tag, frame.length);
}

/**
 * A frame the switch sends to a VF: the device receive controller DEMUXes it into the target
 * domain's rx buffer, tagged; the I/O-bus receive controller takes it out and checks the tag
 * against the receiving VF's domain before the receive DMA.
 */
export function siomReceive(host: Host, vf: NicVf, frame: Uint8Array): Verdict {
  const tag = siomTag(vf);
  host.emit('siom.buffer', { dom: vf.dom, dir: 'rx', op: 'enqueue', tag, len: frame.length });
  host.emit('net.frame', { at: 'siom.rx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return dequeueChecked(host, vf, 'rx', tag, frame.length);
}

/** siom.buffer: a buffer's depth (frames waiting) moves; an empty buffer is forgotten. */
export function applySiomBuffer(state: HostState, e: EventOf<'siom.buffer'>): void {
  const buffers = e.dir === 'tx' ? state.io.siom.tx : state.io.siom.rx;
  const depth = (buffers.get(e.dom) ?? 0) + (e.op === 'enqueue' ? 1 : e.op === 'dequeue' ? -1 : 0);
  if (depth > 0) buffers.set(e.dom, depth);
  else buffers.delete(e.dom);
}
