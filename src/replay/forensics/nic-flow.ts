/**
 * How bytes move through the NIC within one step. The device moves a frame in the step
 * that rang its doorbell (or brought it from the wire), and every point it passes is an
 * event carrying the frame: the buffer reads that gather it (DMA through VT-d, or dom0's
 * grant copies), SIOM's or netback's buffers, the VF, the switch (which tags it with the
 * port VLAN), the receiving side, and the receive write. The events' bytes say which byte
 * went where: a frame at one point is the frame at the point before, with the switch's tag
 * inserted or removed, and the receive write is a piece of the delivered frame.
 *
 * A byte's source is another event's byte (eventLoc), guest memory at a seq, or an origin.
 */
import type { Event, EventOf, Seq } from '../../events/schema.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import { eventLoc, memLoc, type Loc } from './locations.ts';
import type { StepRecord } from './steps.ts';

export type ByteSource =
  | { kind: 'loc'; loc: Loc; at: Seq }
  | { kind: 'origin'; origin: string };

export interface FlowStep {
  /** What the hop did to the bytes, as a reader wants it named. */
  transformation: string;
  sources: ByteSource[];
}

type Indexed<E> = { seq: Seq; event: E };

const frameAt = (e: Event, at: RegExp): e is EventOf<'net.frame'> => e.kind === 'net.frame' && at.test(e.at);

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `tagged` is `plain` with an 802.1Q tag after the MACs. */
function isTagged(tagged: Uint8Array, plain: Uint8Array): boolean {
  return tagged.length === plain.length + 4 && tagged[12] === 0x81 && tagged[13] === 0 && equal(tagged.subarray(0, 12), plain.subarray(0, 12)) && equal(tagged.subarray(16), plain.subarray(12));
}

/** The nearest event before index `i` of the step that matches. */
function before<E extends Event>(step: StepRecord, i: number, match: (e: Event) => e is E): Indexed<E> | undefined {
  for (let j = i - 1; j >= 0; j--) {
    const e = step.events[j];
    if (match(e)) return { seq: step.seq + j, event: e };
  }
  return undefined;
}

/** A buffer read that fed a frame: a DMA read of the device, or dom0 copying out of the guest. */
function bufferRead(e: Event): e is EventOf<'dma.request'> | EventOf<'netback.copy'> {
  return (e.kind === 'dma.request' && !e.write && e.fault === 0 && e.data.length > 0) || (e.kind === 'netback.copy' && e.dir === 'tx');
}

const readData = (e: EventOf<'dma.request'> | EventOf<'netback.copy'>): Uint8Array => e.data;

/**
 * The reads a transmitted frame was gathered from, from its end backwards: each read that
 * is the frame's bytes just before what is already placed (descriptor reads are not).
 */
function gather(step: StepRecord, i: number, frame: Uint8Array): { seq: Seq; at: number; length: number }[] | undefined {
  const parts: { seq: Seq; at: number; length: number }[] = [];
  let end = frame.length;
  for (let j = i - 1; j >= 0 && end > 0; j--) {
    const e = step.events[j];
    if (!bufferRead(e)) continue;
    const data = readData(e);
    if (data.length > end || !equal(frame.subarray(end - data.length, end), data)) continue;
    parts.unshift({ seq: step.seq + j, at: end - data.length, length: data.length });
    end -= data.length;
  }
  return end === 0 ? parts : undefined;
}

/** Positions of a frame at one point in the frame it was made from (same bytes, or the switch's tag). */
function mapFrame(to: Uint8Array, from: Indexed<EventOf<'net.frame'>>, positions: readonly number[], what: string): FlowStep | undefined {
  const src = from.event.frame;
  if (equal(to, src)) return { transformation: what, sources: positions.map((p) => ({ kind: 'loc', loc: eventLoc(from.seq, p), at: from.seq })) };
  if (isTagged(to, src)) {
    return {
      transformation: `${what}; the switch inserts the 802.1Q tag of VLAN ${(to[14] & 0x0f) * 256 + to[15]}`,
      sources: positions.map((p) => (p >= 12 && p < 16 ? { kind: 'origin', origin: `VLAN tag (the switch, port VLAN ${(to[14] & 0x0f) * 256 + to[15]})` } : { kind: 'loc', loc: eventLoc(from.seq, p < 12 ? p : p - 4), at: from.seq })),
    };
  }
  if (isTagged(src, to)) {
    return { transformation: `${what}; the 802.1Q tag removed`, sources: positions.map((p) => ({ kind: 'loc', loc: eventLoc(from.seq, p < 12 ? p : p + 4), at: from.seq })) };
  }
  return undefined;
}

const RX_SIDE = /^(siom\.rx|netback\.rx)$/;
const TX_SIDE = /^(siom\.tx|netback\.tx)$/;

/** Where the bytes of a frame event came from. */
function frameSources(step: StepRecord, i: number, e: EventOf<'net.frame'>, positions: readonly number[]): FlowStep {
  const seq = step.seq + i;
  if (e.at === 'wire.in') {
    const opener = step.events[0];
    const input = opener.kind === 'wire.rx' ? ` #${opener.index}` : '';
    return { transformation: 'arrives from the external wire', sources: positions.map(() => ({ kind: 'origin', origin: `received frame (wire input${input} at seq ${step.seq})` })) };
  }
  let found: FlowStep | undefined;
  if (e.at === 'switch') {
    const from = before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, /^(wire\.in|vf\d+\.tx)$/));
    if (from) found = mapFrame(e.frame, from, positions, `the switch forwards the frame from ${from.event.at}`);
  } else if (RX_SIDE.test(e.at) || /^vf\d+\.rx$/.test(e.at)) {
    const rx = /^vf\d+\.rx$/.test(e.at) ? before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, RX_SIDE)) : undefined;
    const from = rx ?? before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, /^switch$/));
    if (from) found = mapFrame(e.frame, from, positions, e.at.startsWith('siom') ? 'DEMUX into SIOM\'s rx buffer (tagged with the domain)' : e.at.startsWith('netback') ? 'dom0\'s bridge hands it to netback' : `delivered to ${e.at.slice(0, -3)}`);
  } else if (/^vf\d+\.tx$/.test(e.at)) {
    const from = before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, TX_SIDE));
    if (from) found = mapFrame(e.frame, from, positions, `leaves ${e.at.slice(0, -3)}`);
  }
  if (found === undefined && (TX_SIDE.test(e.at) || /^vf\d+\.tx$/.test(e.at))) {
    const parts = gather(step, i, e.frame);
    if (parts !== undefined) {
      const via = e.at.startsWith('netback') ? 'dom0 netback assembles the frame from its grant copies' : e.at.startsWith('siom') ? 'the VF gathers the frame by DMA into SIOM\'s tx buffer (tagged with the domain)' : 'the VF gathers the frame';
      return {
        transformation: via,
        sources: positions.map((p) => {
          const part = parts.find((q) => p >= q.at && p < q.at + q.length)!;
          return { kind: 'loc', loc: eventLoc(part.seq, p - part.at), at: part.seq };
        }),
      };
    }
  }
  return found ?? { transformation: `frame at ${e.at}`, sources: positions.map(() => ({ kind: 'origin', origin: `frame at ${e.at} (seq ${seq}) of unknown origin` })) };
}

/** The receive side's frame that a receive write (DMA or grant copy) is a piece of. */
function receivedPiece(step: StepRecord, i: number, data: Uint8Array, positions: readonly number[], what: string): FlowStep {
  const from = before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, RX_SIDE))
    ?? before(step, i, (x): x is EventOf<'net.frame'> => frameAt(x, /^switch$/));
  if (from !== undefined) {
    const frame = /^switch$/.test(from.event.at) ? untagged(from.event.frame) : from.event.frame;
    for (let start = 0; start + data.length <= frame.length; start++) {
      if (!equal(frame.subarray(start, start + data.length), data)) continue;
      const shift = frame === from.event.frame ? 0 : 4;
      return { transformation: what, sources: positions.map((p) => ({ kind: 'loc', loc: eventLoc(from.seq, start + p + (start + p >= 12 ? shift : 0)), at: from.seq })) };
    }
  }
  return { transformation: `${what} (descriptor write-back)`, sources: positions.map(() => ({ kind: 'origin', origin: 'the device\'s descriptor write-back (length and status)' })) };
}

function untagged(frame: Uint8Array): Uint8Array {
  return frame.length >= 18 && frame[12] === 0x81 && frame[13] === 0 ? Uint8Array.from([...frame.subarray(0, 12), ...frame.subarray(16)]) : frame;
}

/**
 * Where bytes `positions` of the data carried by event `seq` (in `step`) came from. The
 * memory a read reached is named at the read's own seq (its bytes as they were then).
 */
export function eventSources(step: StepRecord, seq: Seq, positions: readonly number[]): FlowStep {
  const i = seq - step.seq;
  const e = step.events[i];
  switch (e.kind) {
    case 'net.frame': return frameSources(step, i, e, positions);
    case 'dma.request': {
      if (!e.write) {
        const mfn = Math.floor(e.hpa / PAGE_SIZE);
        const decrypt = step.events[i + 1];
        const smm = decrypt?.kind === 'mem.decrypt' ? `, decrypted by SMM with domain ${decrypt.keyDom}'s key` : '';
        return {
          transformation: `DMA read through VT-d (iova 0x${e.iova.toString(16)} -> hpa 0x${e.hpa.toString(16)})${smm}`,
          sources: positions.map((p) => ({ kind: 'loc', loc: memLoc(mfn, (e.hpa % PAGE_SIZE) + p), at: seq })),
        };
      }
      const opener = step.events[0];
      if (opener.kind === 'input' && opener.key === 'device.dma') return { transformation: 'DMA write', sources: positions.map(() => ({ kind: 'origin', origin: `input ${opener.key}=${opener.value} (seq ${step.seq})` })) };
      return receivedPiece(step, i, e.data, positions, 'the VF\'s receive DMA writes the frame into the guest\'s buffer');
    }
    case 'netback.copy': {
      const next = step.events[i + 1];
      const copyIn = e.dir === 'rx' && next !== undefined && (next.kind === 'mem.write' || next.kind === 'mem.encrypt');
      if (copyIn) return receivedPiece(step, i, e.data, positions, 'dom0 netback copies the frame into the guest\'s buffer (dom0 holds the plaintext)');
      // The frame the copy reached, as the step's walk resolved it through the guest's p2m.
      const mfn = step.accesses.find((a) => a.seq === seq)?.mfn;
      if (mfn === undefined) return { transformation: 'grant copy', sources: positions.map(() => ({ kind: 'origin', origin: 'a guest page no longer mapped' })) };
      return { transformation: 'dom0 netback copies it out of the guest with a grant copy (plaintext in dom0\'s hands)', sources: positions.map((p) => ({ kind: 'loc', loc: memLoc(mfn, e.offset + p), at: seq })) };
    }
    default:
      return { transformation: e.kind, sources: positions.map(() => ({ kind: 'origin', origin: `${e.kind} at seq ${seq}` })) };
  }
}
