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
import type { DomainId } from '../../../events/schema.ts';
import type { Machine } from '../../machine/machine.ts';
import type { NicVf } from './io-state.ts';
import type { Verdict } from '../../hardware/nic/switch.ts';
import { dmaRead, dmaWrite } from '../vtd-driver/vtd-driver.ts';

/** The device reads guest memory: a DMA with the VF's source id (undefined: a VT-d fault). */
export function siomRead(m: Machine, vf: NicVf, iova: number, len: number): Uint8Array | undefined {
  return dmaRead(m, vf.bdf, iova, len);
}

/** The device writes guest memory: a DMA with the VF's source id (false: a VT-d fault). */
export function siomWrite(m: Machine, vf: NicVf, iova: number, data: Uint8Array): boolean {
  return dmaWrite(m, vf.bdf, iova, data);
}

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
function dequeueChecked(m: Machine, vf: NicVf, dir: 'tx' | 'rx', tag: DomainId, len: number): Verdict {
  m.emit('siom.buffer', { dom: vf.dom, dir, op: 'dequeue', tag, len });
  if (siomTagMatches(tag, vf)) return 'ok';
  m.emit('siom.buffer', { dom: vf.dom, dir, op: 'reject', tag, len });
  return 'tag-mismatch';
}

/**
 * A frame the VF fetched from its guest: into the domain's tx buffer, tagged; the MUX selects
 * it; the device transmit controller checks the tag against the VF's domain.
 */
export function siomTransmit(m: Machine, vf: NicVf, frame: Uint8Array): Verdict {
  const tag = siomTag(vf);
  m.emit('siom.buffer', { dom: vf.dom, dir: 'tx', op: 'enqueue', tag, len: frame.length });
  m.emit('net.frame', { at: 'siom.tx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return dequeueChecked(m, vf, 'tx', tag, frame.length);
}

/**
 * A frame the switch sends to a VF: the device receive controller DEMUXes it into the target
 * domain's rx buffer, tagged; the I/O-bus receive controller takes it out and checks the tag
 * against the receiving VF's domain before the receive DMA.
 */
export function siomReceive(m: Machine, vf: NicVf, frame: Uint8Array): Verdict {
  const tag = siomTag(vf);
  m.emit('siom.buffer', { dom: vf.dom, dir: 'rx', op: 'enqueue', tag, len: frame.length });
  m.emit('net.frame', { at: 'siom.rx', dom: vf.dom, vlan: vf.vlan, verdict: 'ok', frame: frame.slice() });
  return dequeueChecked(m, vf, 'rx', tag, frame.length);
}
