/**
 * An access as a person reads it: who made it (a vCPU, a scripted guest, a device, dom0,
 * Xen, SMM), what it was (the instruction, the operation, the copy), and the bytes.
 */
import type { Event, EventOf, Seq } from '../../events/schema.ts';
import { pciBdfFormat } from '../../core/hardware/pci/index.ts';
import { eventText } from '../format.ts';
import { bytesText } from '../../events/event-text.ts';
import { formatHostRange } from './address.ts';
import { ACCESS_NAMES, AccessKind, type Access, type StepRecord, type WriteInfo } from './steps.ts';
import type { ForensicSession } from './session.ts';

export interface AccessRow {
  seq: Seq;
  /** r, w, x, map, unmap, own, key, scrub, dma, copy. */
  access: string;
  actor: string;
  what: string;
  /** The host bytes touched: `mfn:321/31`. */
  bytes: string;
  /** For a read: the bytes as the reader got them; for a write: the plaintext before and after. */
  value?: string;
  before?: string;
  after?: string;
  event: string;
}

function writeText(session: ForensicSession, write: WriteInfo, step: StepRecord): { actor: string; what: string } {
  const dom = session.domain(write.event.dom);
  const source = write.source;
  switch (source.kind) {
    case 'x86': {
      const x86 = session.x86Text(step.replay!);
      if (source.commit === 'walk') return { actor: `${x86.actor} MMU`, what: 'sets accessed/dirty bits in a page table' };
      if (source.commit === 'delivery') return { actor: x86.actor, what: `exception frame: ${x86.what}` };
      return x86;
    }
    case 'dma': {
      const request = session.event(source.request) as EventOf<'dma.request'>;
      return { actor: `device ${pciBdfFormat(request.sid)} (${session.domain(request.dom)})`, what: `DMA write at iova 0x${request.iova.toString(16)}` };
    }
    case 'copy': {
      const copy = session.event(source.copy) as EventOf<'netback.copy'>;
      return { actor: 'dom0 netback', what: `grant copy into ${session.domain(copy.dom)}'s gfn ${copy.gfn}` };
    }
    case 'device': return { actor: step.events.some((e) => e.kind === 'netback.copy') ? 'dom0 netback' : 'NIC', what: 'descriptor write-back' };
    case 'scripted': return { actor: `${dom} (scripted)`, what: `op #${source.pc} ${source.op.op}${source.op.op === 'write' ? ` gpa 0x${source.op.gpa.toString(16)} ${bytesText(source.op.bytes)}` : ''}` };
    case 'canary': {
      const canary = session.event(source.canary) as EventOf<'guest.canary'>;
      return { actor: `${dom} (scripted)`, what: `plants a canary at gpa 0x${canary.gpa.toString(16)}` };
    }
    case 'image': return { actor: 'domain builder', what: `loads ${dom}'s image` };
    case 'hypervisor': return { actor: 'Xen', what: `exit handler writes ${dom}'s memory` };
    case 'other': return { actor: dom, what: 'mem.write' };
  }
}

/** Who made an event and what it was, for events that are not x86 steps or writes. */
export function eventActor(session: ForensicSession, event: Event): { actor: string; what: string } {
  switch (event.kind) {
    case 'mem.read': return { actor: `${session.domain(event.dom)} (scripted)`, what: `reads gpa 0x${event.gpa.toString(16)}` };
    case 'dom0.foreign_read': return { actor: 'dom0', what: `foreign read of ${session.domain(event.target)}'s gfn ${event.gfn}` };
    case 'dma.request': return { actor: `device ${pciBdfFormat(event.sid)} (${session.domain(event.dom)})`, what: `DMA ${event.write ? 'write' : 'read'} at iova 0x${event.iova.toString(16)}` };
    case 'netback.copy': return { actor: 'dom0 netback', what: `grant copy (${event.dir}) of ${session.domain(event.dom)}'s gfn ${event.gfn}` };
    case 'net.frame': return { actor: event.at === 'switch' ? 'the switch' : event.at, what: `${session.domain(event.dom)}'s frame at ${event.at} (VLAN ${event.vlan}, ${event.verdict})` };
    case 'msi': return { actor: `device ${pciBdfFormat(event.sid)}`, what: `MSI vector 0x${event.vector.toString(16)} to ${session.domain(event.dom)}.v${event.vcpu}` };
    case 'smm.scrub': return { actor: 'SMM', what: `scrubs the frame (it held ${session.domain(event.prevOwner)}'s data)` };
    case 'smm.ppt.update': return { actor: 'SMM', what: `owner ${session.domain(event.prevOwner)} -> ${session.domain(event.owner)}` };
    case 'p2m.update': return { actor: 'Xen', what: `p2m of ${session.domain(event.dom)}: gfn ${event.gfn} -> ${event.mfn < 0 ? '-' : `mfn ${event.mfn}`}` };
    case 'ept.update': return { actor: 'Xen', what: `EPT of ${session.domain(event.dom)}: gfn ${event.gfn} -> ${event.mfn < 0 ? '-' : `mfn ${event.mfn}`}` };
    case 'tlb.fill': return { actor: `${session.domain(event.dom)}.v${event.vcpu} TLB`, what: `linear page 0x${event.page.toString(16)} -> mfn ${event.mfn}` };
    case 'tlb.flush': return { actor: `${session.domain(event.dom)}${event.vcpu >= 0 ? `.v${event.vcpu}` : ''} TLB`, what: `flush (${event.scope})` };
    case 'shadow.sync': return { actor: `${session.domain(event.dom)} shadow table`, what: event.op };
    case 'vtd.op': return { actor: 'Xen VT-d driver', what: `vtd.op ${event.op}` };
    case 'mem.encrypt': return { actor: 'SMM', what: `encrypts with ${session.domain(event.keyDom)}'s key` };
    case 'smm.key.assign': return { actor: 'SMM', what: `key of ${session.domain(event.dom)} assigned` };
    case 'smm.key.revoke': return { actor: 'SMM', what: `key of ${session.domain(event.dom)} revoked` };
    default: return { actor: '-', what: event.kind };
  }
}

/** The value an event carries for an access (what a reader got). */
function carried(event: Event): Uint8Array | undefined {
  switch (event.kind) {
    case 'mem.read': return event.value;
    case 'dom0.foreign_read': return event.value;
    case 'dma.request': return event.data;
    case 'netback.copy': return event.data;
    default: return undefined;
  }
}

/** An access of the processor's kind: a read, a fetch or a page walk. */
const isRead = (access: Access): boolean => access.kind === AccessKind.READ || access.kind === AccessKind.FETCH || access.kind === AccessKind.WALK;

/**
 * Whether describing an access needs the step it happened in (a fold to it): what the
 * processor read or fetched, and a write's source and plaintext before and after, are in no
 * event. Everything else (DMA, copies, mappings, ownership, keys, scrubs, scripted reads) is
 * said by its event alone.
 */
function needsStep(event: Event, access: Access): boolean {
  if (event.kind === 'mem.write') return true;
  return isRead(access) && event.kind !== 'mem.read' && event.kind !== 'dom0.foreign_read';
}

/** Describes one access (from the index), with the step it happened in when its event does not say enough. */
export function describeAccess(session: ForensicSession, access: Access): AccessRow {
  const event = session.event(access.seq);
  const base = { seq: access.seq, access: ACCESS_NAMES[access.kind], bytes: formatHostRange({ mfn: access.mfn, offset: access.offset, length: access.length }), event: eventText(event, session.domainNames) };
  if (needsStep(event, access)) {
    const step = session.stepAlone(access.seq);
    if (isRead(access) && step.replay !== undefined && access.seq === step.seq) {
      const { actor, what } = session.x86Text(step.replay);
      const read = step.replay.accesses.find((a) => a.kind === 'read' && a.pieces.some((p) => p.mfn === access.mfn && p.offset === access.offset));
      const value = access.kind === AccessKind.READ && read?.value !== undefined ? `0x${read.value.toString(16)}` : undefined;
      return { ...base, actor: access.kind === AccessKind.WALK ? `${actor} MMU` : actor, what: access.kind === AccessKind.WALK ? `page walk for ${what}` : what, ...(value ? { value } : {}) };
    }
    if (event.kind === 'mem.write') {
      const write = step.writes.find((w) => w.seq === access.seq);
      if (write !== undefined) {
        const { actor, what } = writeText(session, write, step);
        const data = formatHostRange({ mfn: access.mfn, offset: write.dataOffset, length: write.dataLength });
        return { ...base, bytes: data, actor, what, before: session.bytes(write.before), after: session.bytes(write.after) };
      }
    }
  }
  const { actor, what } = eventActor(session, event);
  const value = carried(event);
  return { ...base, actor, what, ...(value !== undefined ? { value: bytesText(value) } : {}) };
}
