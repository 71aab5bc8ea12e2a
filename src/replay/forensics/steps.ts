/**
 * A run as steps, with what each step did to memory: the StepWalker folds a private state
 * through a range of events, one step at a time (an opener and the events up to the next),
 * and for each step reports
 *
 * - the x86 step re-executed (cpu-replay.ts), when the processor ran it;
 * - every access to a host frame, exact: reads, writes, fetches, page walks, DMA, netback's
 *   copies, scrubs, and the changes of a frame's translation (map/unmap), owner and key;
 * - for every mem.write, which bytes of it are data (SMM re-encrypts whole 64-byte lines, so
 *   a secure-profile write stores more than the writer wrote) and where the data came from.
 *
 * The index builder, provenance and reach all walk steps this way.
 */
import { STEP_OPENERS, NO_FRAME, type Event, type EventOf, type Mfn, type Seq } from '../../events/schema.ts';
import { evolve } from '../../core/machine/evolve.ts';
import type { MachineState } from '../../core/machine/state.ts';
import { PAGE_SIZE, type GuestOp } from '../../core/hypervisor/config.ts';
import { eptLookup, isMisconfigured } from '../../core/hardware/paging/ept.ts';
import { decodeVtdEffects } from '../../core/hypervisor/vtd-driver/vtd-op.ts';
import { replayX86Step, type ReplayedStep } from './cpu-replay.ts';
import { ownerPlaintext } from '../../core/hypervisor/memory/smm.ts';

/** Kinds of access to a frame, as the index stores them (never renumber: the index keeps these). */
export const AccessKind = {
  READ: 0,
  WRITE: 1,
  FETCH: 2,
  MAP: 3,
  UNMAP: 4,
  OWN: 5,
  KEY: 6,
  SCRUB: 7,
  DMA_READ: 8,
  DMA_WRITE: 9,
  COPY_OUT: 10,
  COPY_IN: 11,
  WALK: 12,
} as const;
export type AccessKindCode = (typeof AccessKind)[keyof typeof AccessKind];

/** How `history` names each kind (the r/w/x/map/unmap/own/key/scrub/dma/copy). */
export const ACCESS_NAMES: readonly string[] = ['r', 'w', 'x', 'map', 'unmap', 'own', 'key', 'scrub', 'dma', 'dma', 'copy', 'copy', 'r'];

/** Kinds that change a frame's bytes (who-wrote looks at these). */
export const WRITE_KINDS = (1 << AccessKind.WRITE) | (1 << AccessKind.SCRUB);

export interface Access {
  seq: Seq;
  mfn: Mfn;
  kind: AccessKindCode;
  offset: number;
  length: number;
  /** For a write: the bytes whose plaintext it set (the rest of its lines were re-encrypted as they were). */
  dataOffset: number;
  dataLength: number;
}

/** Where the data of a mem.write came from. */
export type WriteSource =
  | { kind: 'x86'; commit: 'store' | 'walk' | 'delivery' }
  | { kind: 'dma'; request: Seq }
  | { kind: 'copy'; copy: Seq }
  | { kind: 'device' }
  | { kind: 'scripted'; op: GuestOp; pc: number }
  | { kind: 'canary'; canary: Seq }
  | { kind: 'image' }
  | { kind: 'hypervisor' }
  | { kind: 'other' };

export interface WriteInfo {
  seq: Seq;
  event: EventOf<'mem.write'>;
  dataOffset: number;
  dataLength: number;
  source: WriteSource;
  /** With StepWalker's `keepBytes`: the data bytes' plaintext (as the frame's owner reads it) before and after. */
  before?: Uint8Array;
  after?: Uint8Array;
}

export interface StepRecord {
  /** The seq of the opener. */
  seq: Seq;
  events: Event[];
  replay: ReplayedStep | undefined;
  accesses: Access[];
  writes: WriteInfo[];
}

/** Events that are device activity: after one, a step's writes are the device's (or dom0's), not the guest's. */
const DEVICE_KINDS = new Set(['pci.mmio', 'pci.cfg', 'nic.reg', 'dma.request', 'netback.copy', 'net.frame', 'msi']);

/** What a step has seen so far, for classifying its writes. */
class StepScan {
  readonly accesses: Access[] = [];
  readonly writes: WriteInfo[] = [];
  private commitIndex = 0;
  private deviceSeen = false;
  private lastDma: { seq: Seq; event: EventOf<'dma.request'> } | undefined;
  private lastCopy: { seq: Seq; event: EventOf<'netback.copy'>; mfn: Mfn } | undefined;
  private lastCanary: { seq: Seq; event: EventOf<'guest.canary'> } | undefined;
  private imageFor = new Set<number>();

  constructor(seq: Seq, readonly opener: Event, readonly replay: ReplayedStep | undefined) {
    // What the processor read is in no event: the re-execution found it.
    for (const access of replay?.accesses ?? []) {
      const kind = access.kind === 'fetch' ? AccessKind.FETCH : access.kind === 'read' ? AccessKind.READ : access.kind === 'walk-read' ? AccessKind.WALK : undefined;
      if (kind === undefined) continue;
      for (const piece of access.pieces) this.push(seq, piece.mfn, kind, piece.offset, piece.length);
    }
  }

  push(seq: Seq, mfn: Mfn, kind: AccessKindCode, offset: number, length: number, dataOffset = offset, dataLength = length): void {
    if (mfn < 0 || length <= 0) return;
    this.accesses.push({ seq, mfn, kind, offset, length, dataOffset, dataLength });
  }

  /** The accesses of one event, from the state before it is applied. */
  event(state: MachineState, seq: Seq, event: Event): void {
    switch (event.kind) {
      case 'mem.write': this.write(state, seq, event); break;
      case 'mem.read': this.push(seq, event.mfn, AccessKind.READ, event.offset, event.stored.length); break;
      case 'dom0.foreign_read': this.push(seq, event.mfn, AccessKind.READ, event.offset, event.value.length); break;
      case 'dma.request':
        if (event.fault === 0 && event.hpa >= 0 && event.data.length > 0) {
          this.push(seq, Math.floor(event.hpa / PAGE_SIZE), event.write ? AccessKind.DMA_WRITE : AccessKind.DMA_READ, event.hpa % PAGE_SIZE, event.data.length);
        }
        this.effects(seq, event.effects);
        if (event.write) this.lastDma = { seq, event };
        break;
      case 'netback.copy': this.copy(state, seq, event); break;
      case 'smm.scrub': this.push(seq, event.mfn, AccessKind.SCRUB, 0, PAGE_SIZE); break;
      case 'smm.ppt.update': this.push(seq, event.mfn, AccessKind.OWN, 0, PAGE_SIZE); break;
      case 'p2m.update':
        if (event.prevMfn !== event.mfn) this.push(seq, event.prevMfn, AccessKind.UNMAP, 0, PAGE_SIZE);
        this.push(seq, event.mfn, AccessKind.MAP, 0, PAGE_SIZE);
        break;
      case 'ept.update': this.eptUpdate(state, seq, event); break;
      case 'tlb.fill': this.tlbFill(state, seq, event); break;
      case 'tlb.flush': this.tlbFlush(state, seq, event); break;
      case 'shadow.sync': this.shadowSync(state, seq, event); break;
      case 'mem.encrypt': {
        const owner = state.ppt.get(event.mfn)?.owner;
        if (owner !== event.keyDom) this.push(seq, event.mfn, AccessKind.KEY, event.offset, event.len);
        break;
      }
      case 'smm.key.assign':
      case 'smm.key.revoke':
        for (const [mfn, entry] of state.ppt) if (entry.owner === event.dom) this.push(seq, mfn, AccessKind.KEY, 0, PAGE_SIZE);
        break;
      case 'vtd.op': this.vtdOp(state, seq, event); break;
      case 'msi': this.effects(seq, event.effects); break;
      case 'guest.canary': this.lastCanary = { seq, event }; break;
      case 'domain.create': this.imageFor.add(event.dom); break;
      case 'input':
        if (/^domain\..+\.x86$/.test(event.key)) this.imageFor = new Set([...state.domains.values()].map((d) => d.id));
        break;
      default: break;
    }
    if (DEVICE_KINDS.has(event.kind)) this.deviceSeen = true;
  }

  /** VT-d effects that write memory (the invalidation wait descriptor's status). */
  private effects(seq: Seq, json: string): void {
    if (!json.includes('memory.write32')) return;
    for (const effect of decodeVtdEffects(json)) {
      if (effect.kind === 'memory.write32') this.push(seq, Math.floor(effect.hpa / PAGE_SIZE), AccessKind.WRITE, effect.hpa % PAGE_SIZE, 4);
    }
  }

  private copy(state: MachineState, seq: Seq, event: EventOf<'netback.copy'>): void {
    const mfn = state.domains.get(event.dom)?.p2m.get(event.gfn) ?? NO_FRAME;
    // A copy into the guest is followed by its mem.write (write() turns this read into a copy-in).
    this.push(seq, mfn, AccessKind.COPY_OUT, event.offset, event.data.length);
    this.lastCopy = { seq, event, mfn };
  }

  private eptUpdate(state: MachineState, seq: Seq, event: EventOf<'ept.update'>): void {
    const ept = state.domains.get(event.dom)?.ept;
    const old = ept === undefined ? undefined : eptLookup(ept, event.gfn);
    const oldMfn = old !== undefined && !isMisconfigured(old.bits) ? old.mfn : NO_FRAME;
    const newMfn = event.mfn >= 0 && !isMisconfigured(event.bits) ? event.mfn : NO_FRAME;
    if (oldMfn !== newMfn) this.push(seq, oldMfn, AccessKind.UNMAP, 0, PAGE_SIZE);
    this.push(seq, newMfn, AccessKind.MAP, 0, PAGE_SIZE);
  }

  private tlbFill(state: MachineState, seq: Seq, event: EventOf<'tlb.fill'>): void {
    const tlb = state.domains.get(event.dom)?.vcpus[event.vcpu]?.x86?.tlb;
    if (tlb !== undefined && event.evicted >= 0) this.push(seq, tlb.get(event.evicted)?.mfn ?? NO_FRAME, AccessKind.UNMAP, 0, PAGE_SIZE);
    const replaced = tlb?.get(event.page)?.mfn;
    if (replaced !== undefined && replaced !== event.mfn) this.push(seq, replaced, AccessKind.UNMAP, 0, PAGE_SIZE);
    this.push(seq, event.mfn, AccessKind.MAP, 0, PAGE_SIZE);
  }

  private tlbFlush(state: MachineState, seq: Seq, event: EventOf<'tlb.flush'>): void {
    const domain = state.domains.get(event.dom);
    const vcpus = event.vcpu >= 0 ? [domain?.vcpus[event.vcpu]] : domain?.vcpus ?? [];
    const frames = new Set<Mfn>();
    for (const v of vcpus) {
      const tlb = v?.x86?.tlb;
      if (tlb === undefined) continue;
      if (event.scope === 'page') { const e = tlb.get(event.page); if (e) frames.add(e.mfn); } else for (const e of tlb.values()) frames.add(e.mfn);
    }
    for (const mfn of frames) this.push(seq, mfn, AccessKind.UNMAP, 0, PAGE_SIZE);
  }

  private shadowSync(state: MachineState, seq: Seq, event: EventOf<'shadow.sync'>): void {
    if (event.op === 'fill') { this.push(seq, event.mfn, AccessKind.MAP, 0, PAGE_SIZE); return; }
    const domain = state.domains.get(event.dom);
    const vcpus = event.vcpu >= 0 ? [domain?.vcpus[event.vcpu]] : domain?.vcpus ?? [];
    const frames = new Set<Mfn>();
    for (const v of vcpus) {
      const shadow = v?.x86?.shadow;
      if (shadow === undefined) continue;
      if (event.page >= 0) { const e = shadow.get(event.page); if (e) frames.add(e.mfn); } else for (const e of shadow.values()) frames.add(e.mfn);
    }
    for (const mfn of frames) this.push(seq, mfn, AccessKind.UNMAP, 0, PAGE_SIZE);
  }

  /** Xen's table words (writes to its own frames) and the guest frames a second-level leaf maps or unmaps. */
  private vtdOp(state: MachineState, seq: Seq, event: EventOf<'vtd.op'>): void {
    for (const mfn of event.alloc) this.push(seq, mfn, AccessKind.OWN, 0, PAGE_SIZE);
    for (const mfn of event.free) this.push(seq, mfn, AccessKind.SCRUB, 0, PAGE_SIZE);
    const tables = new Set([...(state.io.xenVtd.domains.get(event.did - 1)?.frames ?? []), ...event.alloc]);
    const leafFrame = (low: number): Mfn => ((low & 3) !== 0 && !tables.has(Math.floor(low / PAGE_SIZE)) ? Math.floor((low >>> 0) / PAGE_SIZE) : NO_FRAME);
    const mapping = event.op === 'map' || event.op === 'unmap' || event.op === 'domain.create';
    for (let i = 0; i + 2 < event.words.length; i += 3) {
      const hpa = event.words[i];
      const mfn = Math.floor(hpa / PAGE_SIZE);
      this.push(seq, mfn, AccessKind.WRITE, hpa % PAGE_SIZE, 8);
      if (!mapping) continue;
      const page = state.memory.get(mfn);
      const oldLow = page === undefined ? 0 : new DataView(page.bytes.buffer, page.bytes.byteOffset).getUint32(hpa % PAGE_SIZE, true);
      const before = leafFrame(oldLow);
      const after = leafFrame(event.words[i + 1]);
      if (before !== after) this.push(seq, before, AccessKind.UNMAP, 0, PAGE_SIZE);
      this.push(seq, after, AccessKind.MAP, 0, PAGE_SIZE);
    }
    this.effects(seq, event.effects);
  }

  // ---- writes ------------------------------------------------------------------------

  private write(state: MachineState, seq: Seq, event: EventOf<'mem.write'>): void {
    const { source, data } = this.classify(state, event);
    const stored = { offset: event.offset, length: event.stored.length };
    const extent = state.profile === 'vanilla' || data === undefined ? stored : clip(data, stored);
    if (source.kind === 'copy') this.recastCopy();
    this.push(seq, event.mfn, AccessKind.WRITE, stored.offset, stored.length, extent.offset, extent.length);
    this.writes.push({ seq, event, dataOffset: extent.offset, dataLength: extent.length, source });
  }

  /** The copy before this write was dom0 copying in, not out. */
  private recastCopy(): void {
    const copy = this.accesses.findLast((a) => a.seq === this.lastCopy?.seq);
    if (copy !== undefined) copy.kind = AccessKind.COPY_IN;
  }

  /** Where a write's data came from, and which bytes of the frame it is (undefined: all it stored). */
  private classify(state: MachineState, event: EventOf<'mem.write'>): Classified {
    const start = event.gpa >= 0 ? event.gpa % PAGE_SIZE : event.offset;
    const commits = this.replay?.commits;
    if (commits !== undefined && this.commitIndex < commits.length && !this.deviceSeen) {
      const commit = commits[this.commitIndex];
      if (commit.range.mfn === event.mfn && commit.range.offset >= event.offset && commit.range.offset + commit.range.length <= event.offset + event.stored.length) {
        this.commitIndex++;
        const kind = commit.kind === 'walk' ? 'walk' : this.replay!.delivered !== undefined ? 'delivery' : 'store';
        return { source: { kind: 'x86', commit: kind }, data: { offset: commit.range.offset, length: commit.range.length } };
      }
    }
    const dma = this.lastDma;
    if (dma !== undefined && dma.event.hpa >= 0 && Math.floor(dma.event.hpa / PAGE_SIZE) === event.mfn) {
      this.lastDma = undefined;
      return { source: { kind: 'dma', request: dma.seq }, data: { offset: dma.event.hpa % PAGE_SIZE, length: dma.event.data.length } };
    }
    const copy = this.lastCopy;
    if (copy !== undefined && copy.mfn === event.mfn && copy.event.offset === start) {
      this.lastCopy = undefined;
      return { source: { kind: 'copy', copy: copy.seq }, data: { offset: copy.event.offset, length: copy.event.data.length } };
    }
    // The domain builder loads a new domain's image in the step that creates it, after the
    // NIC registers of the VFs it sets up: an image write, not a device's.
    if (this.imageFor.has(event.dom) && this.opener.kind !== 'guest.op') return this.image(state, event);
    if (this.deviceSeen) return { source: { kind: 'device' }, data: { offset: start, length: event.offset + event.stored.length - start } };
    if (this.opener.kind === 'guest.op') return this.scripted(state, event);
    if (this.opener.kind === 'vm.exit') return { source: { kind: 'hypervisor' }, data: { offset: start, length: event.offset + event.stored.length - start } };
    return { source: { kind: 'other' } };
  }

  /** A scripted guest's own write: the operation says how many bytes it wrote from the write's gpa. */
  private scripted(state: MachineState, event: EventOf<'mem.write'>): Classified {
    const opener = this.opener as EventOf<'guest.op'>;
    const op = state.domains.get(opener.dom)?.programs[opener.vcpu]?.[opener.pc];
    if (op === undefined) return { source: { kind: 'other' } };
    if (this.lastCanary !== undefined) {
      const canary = this.lastCanary;
      return { source: { kind: 'canary', canary: canary.seq }, data: dataFrom(event, canary.event.gpa + canary.event.secret.length) };
    }
    const end = op.op === 'write' ? op.gpa + op.bytes.length
      : op.op === 'nic_tx' && !isRingAddress(event.gpa) ? event.gpa + op.frame.length
        : event.gpa + 16;
    return { source: { kind: 'scripted', op, pc: opener.pc }, data: dataFrom(event, end) };
  }

  /** The domain builder copying the guest's image in. */
  private image(state: MachineState, event: EventOf<'mem.write'>): Classified {
    const name = state.domains.get(event.dom)?.name;
    const image = state.config.domains.find((d) => d.name === name)?.image;
    return { source: { kind: 'image' }, data: image == null ? undefined : dataFrom(event, image.load + image.bytes.length) };
  }
}

type Classified = { source: WriteSource; data?: { offset: number; length: number } };

/** The bytes of a write from its gpa up to the guest-physical `end` of the data (within what it stored). */
function dataFrom(event: EventOf<'mem.write'>, end: number): { offset: number; length: number } | undefined {
  if (event.gpa < 0) return undefined;
  const offset = event.gpa % PAGE_SIZE;
  const storedEnd = event.offset + event.stored.length;
  return { offset, length: Math.max(1, Math.min(storedEnd - offset, end - event.gpa)) };
}

/** The scripted NIC driver's rings (tx 0x4000, rx 0x4800): its descriptor writes are 16 bytes. */
function isRingAddress(gpa: number): boolean {
  return gpa >= 0x4000 && gpa < 0x5000;
}

function clip(data: { offset: number; length: number }, stored: { offset: number; length: number }): { offset: number; length: number } {
  const offset = Math.max(data.offset, stored.offset);
  const end = Math.min(data.offset + data.length, stored.offset + stored.length);
  return end > offset ? { offset, length: end - offset } : stored;
}

/**
 * Folds a private state (one nothing else holds) through events step by step. `seek` the walker to a step boundary
 * (a checkpoint) with its state, then `feed` events in order; each step is handed to
 * `onStep` when the next opener arrives (or at `finish`).
 */
export class StepWalker {
  private scan: StepScan | undefined;
  private events: Event[] = [];
  private stepSeq: Seq = 0;

  /**
   * @param keepBytes keep each write's plaintext before and after (for showing it; the
   * index does without)
   */
  constructor(private state: MachineState, private readonly onStep: (step: StepRecord) => void, private readonly keepBytes = false) {}

  get current(): MachineState {
    return this.state;
  }

  /** Where the step in progress began (Infinity before the first event). */
  get stepInProgress(): Seq {
    return this.scan === undefined ? Infinity : this.stepSeq;
  }

  /** The last write of the step in progress (right after a mem.write was fed: that one). */
  get lastWrite(): WriteInfo | undefined {
    return this.scan?.writes.at(-1);
  }

  feed(seq: Seq, event: Event): void {
    if (STEP_OPENERS.has(event.kind) || this.scan === undefined) {
      this.finish();
      this.stepSeq = seq;
      this.scan = new StepScan(seq, event, replayX86Step(this.state, event));
      this.events = [];
    }
    this.scan.event(this.state, seq, event);
    this.events.push(event);
    const write = this.keepBytes && event.kind === 'mem.write' ? this.scan.writes.at(-1) : undefined;
    if (write !== undefined) write.before = ownerPlaintext(this.state, write.event.mfn, write.dataOffset, write.dataLength);
    // The state is the walker's alone: pages it copied are written in place (evolve's live).
    // Building the index of 1M events of the long workload: 9.9 -> 7.9-8.7 s, 259 -> 191-195 MB.
    evolve(this.state, event, true);
    if (write !== undefined) write.after = ownerPlaintext(this.state, write.event.mfn, write.dataOffset, write.dataLength);
  }

  /** Hands over the step in progress (the range ended). */
  finish(): void {
    if (this.scan === undefined) return;
    const scan = this.scan;
    this.scan = undefined;
    this.onStep({ seq: this.stepSeq, events: this.events, replay: scan.replay, accesses: scan.accesses, writes: scan.writes });
  }
}
