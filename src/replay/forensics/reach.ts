/**
 * Reach: where bytes went after a seq, forwards, PANDA-style: the bytes are labelled, and
 * every step moves the labels with the data (an instruction by its rule, a DMA or a netback
 * copy with the frame the NIC carries, a write of anything else clears them). Each time
 * labelled bytes are read (by a vCPU, a scripted guest, dom0, a device) or leave the
 * machine, that is reported, with whether the reader saw them in plaintext: in the secure
 * profile a reader other than the frame's owner gets what SMM decrypts with its own key,
 * which is not the plaintext; dom0's foreign mappings show ciphertext.
 *
 * Only stretches that can matter are walked: while no register holds a label, the walk
 * jumps to the next chunk in which the index shows an access to a labelled frame.
 */
import type { EventOf, Seq } from '../../events/schema.ts';
import { pciBdfFormat } from '../../core/hardware/pci/index.ts';
import type { Resolved } from './address.ts';
import { eventSources } from './nic-flow.ts';
import { eventLoc, isEventLoc, isMemLoc, isRegLoc, locRuns, memLoc, memOf, rangeLocs, runText, type Loc } from './locations.ts';
import { registerByteLocs, stepSeqDefs } from './register-defs.ts';
import type { ForensicSession } from './session.ts';
import { AccessKind, type StepRecord } from './steps.ts';

export interface ReachEvent {
  seq: Seq;
  /** moved: the bytes were copied somewhere; read: someone read them; left: they left the machine. */
  kind: 'moved' | 'read' | 'left';
  actor: string;
  what: string;
  /** The labelled bytes involved: `mfn:336/62`, a frame's positions. */
  bytes: string;
  /** For a read: who read them, and whether what they got was the plaintext. */
  reader?: string;
  plaintext?: boolean;
}

export interface Reach {
  owner: string;
  events: ReachEvent[];
  /** Readers other than the owner (dom0 included) that got the plaintext, first time each. */
  exposed: { reader: string; seq: Seq; what: string }[];
  /** Where labelled bytes still are at the end of the range. */
  remaining: string[];
  /** The range walked. */
  from: Seq;
  to: Seq;
  /** More events than the limit: the rest were counted, not listed. */
  omitted: number;
}

export interface ReachOptions {
  to: Seq;
  /** Events listed at most (default 500). */
  limit?: number;
}

class Spread {
  readonly labelled = new Set<Loc>();
  readonly events: ReachEvent[] = [];
  readonly exposed: Reach['exposed'] = [];
  omitted = 0;

  constructor(private readonly session: ForensicSession, private readonly owner: number, private readonly limit: number, private readonly vanilla: boolean) {}

  /** A frame's owner at a seq: the last ownership change before it (from the index). */
  private ownerAt(mfn: number, seq: Seq): number | undefined {
    const it = this.session.index.accesses(mfn, 0, seq, { newestFirst: true, kinds: 1 << AccessKind.OWN });
    const last = it.next();
    it.return(undefined);
    if (last.done) return undefined;
    const e = this.session.event(last.value.seq);
    return e.kind === 'smm.ppt.update' ? (e.owner < 0 ? undefined : e.owner) : undefined;
  }

  /** Whether `reader` gets the plaintext of a frame: always in vanilla; under SMM only with the owner's key. */
  private plaintextFor(reader: number, mfn: number, seq: Seq): boolean {
    return this.vanilla || this.ownerAt(mfn, seq) === reader;
  }

  private report(event: ReachEvent): void {
    if (event.kind === 'read' && event.plaintext && event.reader !== this.session.domain(this.owner) && !this.exposed.some((e) => e.reader === event.reader)) {
      this.exposed.push({ reader: event.reader!, seq: event.seq, what: event.what });
    }
    if (this.events.length < this.limit) this.events.push(event);
    else this.omitted++;
  }

  private text(locs: Loc[]): string {
    return locRuns(locs).map((run) => runText(run, this.session.domainNames, (seq) => this.session.eventName(seq))).join(' + ');
  }

  get registersLabelled(): boolean {
    for (const loc of this.labelled) if (isRegLoc(loc)) return true;
    return false;
  }

  /** The frames holding labelled bytes. */
  frames(): number[] {
    return [...new Set([...this.labelled].filter(isMemLoc).map((loc) => memOf(loc).mfn))];
  }

  /** Moves the labels through one step, from event `from` on. */
  step(step: StepRecord, from: Seq): void {
    const defs = step.seq >= from ? stepSeqDefs(step) : [];
    const end = step.seq + step.events.length;
    // An instruction's defs read the labels as they were before it, all at once.
    const instruction = defs.filter((d) => d.seq === step.seq);
    if (instruction.length > 0) this.instructionStep(step, instruction);
    for (let seq = Math.max(from, step.seq); seq < end; seq++) {
      this.event(step, seq);
      for (const def of defs) if (def.seq === seq && seq !== step.seq) this.labelled.delete(def.dest);
    }
    for (const loc of [...this.labelled]) if (isEventLoc(loc)) this.labelled.delete(loc);
  }

  private instructionStep(step: StepRecord, defs: ReturnType<typeof stepSeqDefs>): void {
    const replay = step.replay!;
    const x86 = this.session.x86Text(replay);
    const read = replay.accesses.filter((a) => a.kind === 'read').flatMap((a) => a.pieces.flatMap((p) => Array.from({ length: p.length }, (_, i) => memLoc(p.mfn, p.offset + i)))).filter((loc) => this.labelled.has(loc));
    if (read.length > 0) {
      const plaintext = this.plaintextFor(replay.dom, memOf(read[0]).mfn, step.seq);
      this.report({ seq: step.seq, kind: 'read', actor: x86.actor, what: x86.what, bytes: this.text(read), reader: this.session.domain(replay.dom), plaintext });
    }
    const next = defs.map((d) => ({ dest: d.dest, on: d.srcs.some((s) => this.labelled.has(s)) }));
    const moved: Loc[] = [];
    for (const { dest, on } of next) {
      if (on) {
        this.labelled.add(dest);
        if (isMemLoc(dest)) moved.push(dest);
      } else {
        this.labelled.delete(dest);
      }
    }
    if (moved.length > 0) this.report({ seq: step.seq, kind: 'moved', actor: x86.actor, what: x86.what, bytes: this.text(moved) });
  }

  /** What one event does to the labels: writes clear or carry them, reads and frames are reported. */
  private event(step: StepRecord, seq: Seq): void {
    const e = step.events[seq - step.seq];
    switch (e.kind) {
      case 'mem.write': {
        const write = step.writes.find((w) => w.seq === seq)!;
        if (write.source.kind === 'x86' && write.source.commit === 'store') return;
        const carried = write.source.kind === 'dma' ? { seq: write.source.request, start: (this.session.event(write.source.request) as EventOf<'dma.request'>).hpa % 4096 }
          : write.source.kind === 'copy' ? { seq: write.source.copy, start: (this.session.event(write.source.copy) as EventOf<'netback.copy'>).offset } : undefined;
        const moved: Loc[] = [];
        for (let b = write.dataOffset; b < write.dataOffset + write.dataLength; b++) {
          const loc = memLoc(e.mfn, b);
          if (carried !== undefined && this.labelled.has(eventLoc(carried.seq, b - carried.start))) {
            this.labelled.add(loc);
            moved.push(loc);
          } else {
            this.labelled.delete(loc);
          }
        }
        if (moved.length > 0) this.report({ seq, kind: 'moved', actor: write.source.kind === 'dma' ? 'device' : 'dom0 netback', what: `written into ${this.session.domain(e.dom)}'s memory`, bytes: this.text(moved) });
        return;
      }
      case 'smm.scrub':
        for (let b = 0; b < 4096; b++) this.labelled.delete(memLoc(e.mfn, b));
        return;
      case 'mem.read':
      case 'dom0.foreign_read': {
        const offset = e.offset;
        const length = e.kind === 'mem.read' ? e.stored.length : e.value.length;
        const hit = Array.from({ length }, (_, i) => memLoc(e.mfn, offset + i)).filter((loc) => this.labelled.has(loc));
        if (hit.length === 0) return;
        const reader = e.kind === 'mem.read' ? e.dom : 0;
        // dom0's foreign mapping shows what is stored (ciphertext under SMM); a guest's read is decrypted with its own key.
        const plaintext = this.vanilla || (e.kind === 'mem.read' && this.plaintextFor(reader, e.mfn, seq));
        const what = e.kind === 'mem.read' ? `reads gpa 0x${e.gpa.toString(16)}` : `foreign read of ${this.session.domain(e.target)}'s gfn ${e.gfn}`;
        this.report({ seq, kind: 'read', actor: this.session.domain(reader), what, bytes: this.text(hit), reader: this.session.domain(reader), plaintext });
        return;
      }
      case 'net.frame':
      case 'dma.request':
      case 'netback.copy':
        this.carry(step, seq);
        return;
      default:
        return;
    }
  }

  /** Labels the bytes an event carries whose sources are labelled, and reports who got them. */
  private carry(step: StepRecord, seq: Seq): void {
    const e = step.events[seq - step.seq] as EventOf<'net.frame'> | EventOf<'dma.request'> | EventOf<'netback.copy'>;
    const data = e.kind === 'net.frame' ? e.frame : e.data;
    if (data.length === 0) return;
    const positions = Array.from({ length: data.length }, (_, i) => i);
    const flow = eventSources(step, seq, positions);
    const hit: Loc[] = [];
    flow.sources.forEach((source, p) => {
      if (source.kind === 'loc' && this.labelled.has(source.loc)) {
        this.labelled.add(eventLoc(seq, p));
        hit.push(eventLoc(seq, p));
      }
    });
    if (hit.length === 0) return;
    const bytes = this.text(hit);
    if (e.kind === 'netback.copy') {
      this.report({ seq, kind: 'read', actor: 'dom0 netback', what: `grant copy (${e.dir}) of ${this.session.domain(e.dom)}'s gfn ${e.gfn}`, bytes, reader: 'dom0', plaintext: true });
    } else if (e.kind === 'dma.request') {
      if (!e.write) {
        const plaintext = this.plaintextFor(e.dom, Math.floor(e.hpa / 4096), seq);
        this.report({ seq, kind: 'read', actor: `device ${pciBdfFormat(e.sid)}`, what: `DMA read at iova 0x${e.iova.toString(16)}`, bytes, reader: `device ${pciBdfFormat(e.sid)} (${this.session.domain(e.dom)})`, plaintext });
      }
    } else if (e.at === 'wire.out') {
      this.report({ seq, kind: 'left', actor: 'the wire', what: 'a frame leaves the machine on the external wire', bytes });
    } else if (/^vf\d+\.rx$/.test(e.at) && e.verdict === 'ok') {
      this.report({ seq, kind: 'read', actor: `NIC ${e.at.split('.')[0].toUpperCase()}`, what: `frame delivered to ${this.session.domain(e.dom)}`, bytes, reader: this.session.domain(e.dom), plaintext: true });
    } else if (e.at === 'switch') {
      this.report({ seq, kind: 'moved', actor: 'the switch', what: `frame through the switch (VLAN ${e.vlan}, ${e.verdict})`, bytes });
    }
  }
}

/** Where the bytes of an address at position `at` went, up to `options.to`. */
export function reach(session: ForensicSession, resolved: Resolved, at: Seq, options: ReachOptions): Reach {
  const state = session.timeline.stateAt(at);
  const owner = resolved.kind === 'register' ? resolved.register.dom : state.ppt.get(resolved.ranges[0].mfn)?.owner ?? -1;
  const spread = new Spread(session, owner, options.limit ?? 500, state.profile === 'vanilla');
  for (const loc of resolved.kind === 'memory' ? rangeLocs(resolved.ranges) : registerByteLocs(resolved.register)) spread.labelled.add(loc);
  // The first step may have begun before `at`: only its events from `at` on count.
  let from = at;
  let seq = at;
  while (seq < options.to && spread.labelled.size > 0) {
    if (!spread.registersLabelled) {
      const next = nextAccess(session, spread.frames(), seq, options.to);
      if (next === undefined) break;
      if (next > seq) from = -1;
      seq = Math.max(seq, next);
    }
    const step = session.step(seq);
    spread.step(step, Math.max(from, step.seq));
    seq = step.seq + step.events.length;
    from = -1;
  }
  return {
    owner: session.domain(owner), events: spread.events, exposed: spread.exposed, omitted: spread.omitted, from: at, to: options.to,
    remaining: locRuns([...spread.labelled].filter(isMemLoc).sort((a, b) => a - b)).map((run) => runText(run, session.domainNames, (s) => session.eventName(s))),
  };
}

/** The first seq at or after `from` (rounded down to its chunk) at which one of `frames` is accessed. */
function nextAccess(session: ForensicSession, frames: number[], from: Seq, to: Seq): Seq | undefined {
  let best: Seq | undefined;
  for (const mfn of frames) {
    const it = session.index.accesses(mfn, from, best ?? to, { kinds: ~(1 << AccessKind.MAP | 1 << AccessKind.UNMAP | 1 << AccessKind.OWN | 1 << AccessKind.KEY) });
    const first = it.next();
    it.return(undefined);
    if (!first.done) best = first.value.seq;
  }
  return best;
}
