/**
 * Provenance: where the bytes at an address came from, followed backwards through every
 * data flow the machine models until their origins. Two kinds of hop:
 *
 * 1. bytes at a location at a seq <- the last write of each before that seq (the index);
 * 2. a write's bytes <- its source: an x86 store's registers and, through each
 *    instruction's rule (x86-flows.ts), the instructions and memory before it; a DMA write
 *    or netback copy <- the frame the NIC delivered, back through the switch, the VF, SIOM or
 *    netback, to the buffer reads that gathered it (nic-flow.ts) and the guest memory they
 *    read; a scripted write, a canary, a guest image, a frame from the wire, a scrubbed or
 *    never-written frame, an immediate <- nothing: those are origins.
 *
 * The result is a graph of hops (seq, actor, from -> to, transformation, bytes); bytes with
 * the same history share hops. A budget bounds it (the rest is marked as cut).
 */
import type { EventOf, Seq } from '../../events/schema.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import { pciBdfFormat } from '../../core/hardware/pci/index.ts';
import { bytesText } from '../../events/event-text.ts';
import type { Resolved } from './address.ts';
import { eventSources, type ByteSource } from './nic-flow.ts';
import { eventLoc, eventOf, isEventLoc, isMemLoc, isRegLoc, locRuns, memLoc, memOf, rangeLocs, regOf, runText, type Loc } from './locations.ts';
import { lastRegisterDefs, registerByteLocs, stepSeqDefs, type SeqDef } from './register-defs.ts';
import type { ForensicSession } from './session.ts';
import { AccessKind, type StepRecord, type WriteInfo } from './steps.ts';
import type { Def } from './x86-flows.ts';

export interface Hop {
  id: number;
  seq: Seq;
  actor: string;
  /** What happened at `seq`: the instruction, the copy, the frame at a point. */
  what: string;
  /** The bytes this hop made: `mfn:404/62`, `reg:alice.v0:ax`, `frame at switch@70465[16..65]`. */
  to: string;
  /** How the bytes were changed on the way, if they were. */
  transformation: string;
  /** The bytes, as far as they are known here. */
  bytes?: string;
  /** Set when the bytes were made here from nothing before them. */
  origin?: string;
  /** The hops the bytes came from. */
  from: number[];
  /** The budget ran out before this hop's sources were followed. */
  cut?: boolean;
}

export interface Provenance {
  /** The hops that made the queried bytes (in the order of the bytes). */
  roots: number[];
  hops: Hop[];
  /** Hops that are origins, in the order found. */
  origins: number[];
  /** True when the budget cut the search short somewhere. */
  cut: boolean;
}

export interface ProvenanceOptions {
  /** Hops at most (default 400). */
  budget?: number;
  /** How deep at most (default 64). */
  depth?: number;
}

/** What a hop says about itself (the rest is filled in from its group). */
type HopText = Pick<Hop, 'actor' | 'what' | 'transformation'> & { origin?: string };

/** Bytes that share their maker: one hop. */
interface Group {
  key: string;
  seq: Seq;
  locs: Loc[];
  text: HopText;
  /** The bytes, one per loc where known. */
  bytes: number[];
  /** Where the bytes came from (empty for an origin), each at the seq its bytes are read. */
  sources: { loc: Loc; at: Seq }[];
}

class Tracer {
  readonly hops: Hop[] = [];
  readonly origins: number[] = [];
  private readonly memo = new Map<string, number>();
  private readonly defCache = new WeakMap<StepRecord, Map<Loc, Def>>();
  private readonly budget: number;
  private readonly depth: number;
  cut = false;

  constructor(private readonly session: ForensicSession, options: ProvenanceOptions) {
    this.budget = options.budget ?? 400;
    this.depth = options.depth ?? 64;
  }

  /** The hops that made `locs` as they were at position `at`; yields the number of hops after each new one. */
  *trace(locs: readonly Loc[], at: Seq, depth: number): Generator<number, number[]> {
    const ids: number[] = [];
    for (const group of this.groups(locs, at)) ids.push(yield* this.hop(group, depth));
    return ids;
  }

  private *hop(group: Group, depth: number): Generator<number, number> {
    const key = `${group.key}|${group.locs[0]}+${group.locs.length}`;
    const known = this.memo.get(key);
    if (known !== undefined) return known;
    const id = this.hops.length;
    const hop: Hop = { id, seq: group.seq, to: this.text(group.locs), from: [], ...group.text, ...(group.bytes.length > 0 ? { bytes: bytesText(Uint8Array.from(group.bytes)) } : {}) };
    this.hops.push(hop);
    this.memo.set(key, id);
    if (hop.origin !== undefined) this.origins.push(id);
    yield this.hops.length;
    if (group.sources.length === 0) return id;
    if (this.hops.length >= this.budget || depth >= this.depth) {
      hop.cut = true;
      this.cut = true;
      return id;
    }
    // Sources read at different seqs (a mix of registers and memory) are traced per seq.
    const byAt = new Map<Seq, Loc[]>();
    for (const s of group.sources) byAt.set(s.at, [...(byAt.get(s.at) ?? []), s.loc]);
    for (const [at, locs] of byAt) hop.from.push(...(yield* this.trace([...new Set(locs)], at, depth + 1)));
    hop.from = [...new Set(hop.from)];
    return id;
  }

  text(locs: readonly Loc[]): string {
    return locRuns(locs).map((run) => runText(run, this.session.domainNames, (seq) => this.session.eventName(seq))).join(' + ');
  }

  /** Groups `locs` by what made them. */
  private groups(locs: readonly Loc[], at: Seq): Group[] {
    const groups: Group[] = [];
    const mem = locs.filter(isMemLoc);
    const regs = locs.filter(isRegLoc);
    const events = locs.filter(isEventLoc);
    if (mem.length > 0) groups.push(...this.memoryGroups(mem, at));
    if (regs.length > 0) groups.push(...this.registerGroups(regs, at));
    if (events.length > 0) groups.push(...this.eventGroups(events));
    return merge(groups);
  }

  // ---- memory: the last write of each byte ------------------------------------------------

  private memoryGroups(locs: Loc[], at: Seq): Group[] {
    const groups: Group[] = [];
    for (const run of locRuns(locs)) {
      const { mfn, offset } = memOf(run.first);
      const writes = this.session.index.lastWrites({ mfn, offset, length: run.length }, at, true);
      writes.forEach((write, i) => {
        const loc = memLoc(mfn, offset + i);
        if (write === undefined) {
          groups.push(origin('never', 0, [loc], { actor: '-', what: 'never written since the recording began', transformation: '' }, 'uninitialised (never written since the recording began: zeros)'));
        } else if (write.kind === AccessKind.SCRUB) {
          groups.push(origin(`scrub${write.seq}`, write.seq, [loc], { actor: 'SMM', what: 'scrubs the frame', transformation: '' }, `scrubbed at seq ${write.seq} (zeros)`));
        } else {
          groups.push(this.writeGroup(loc, write.seq));
        }
      });
    }
    return groups;
  }

  /** The hop of one byte written at `seq`, by the source of that write. */
  private writeGroup(loc: Loc, seq: Seq): Group {
    const step = this.session.step(seq);
    const event = step.events[seq - step.seq];
    if (event.kind !== 'mem.write') {
      const by = event.kind === 'vtd.op' ? `Xen's VT-d driver (vtd.op ${event.op})` : `${event.kind}`;
      return origin(`table${seq}`, seq, [loc], { actor: 'Xen', what: `writes its own frame (${by})`, transformation: '' }, `a table entry Xen wrote (${by})`);
    }
    const write = step.writes.find((w) => w.seq === seq)!;
    const bytes = byteOf(write, loc);
    const encrypt = step.events[seq - step.seq - 1];
    const smm = encrypt?.kind === 'mem.encrypt' ? `, stored encrypted by SMM with ${this.session.domain(encrypt.keyDom)}'s key` : '';
    const src = write.source;
    switch (src.kind) {
      case 'x86': {
        const x86 = this.session.x86Text(step.replay!);
        if (src.commit === 'walk') return origin(`walk${seq}`, seq, [loc], { actor: `${x86.actor} MMU`, what: 'sets accessed/dirty bits in a page table', transformation: '' }, 'the processor\'s page walk (accessed/dirty bits)', bytes);
        if (src.commit === 'delivery') return origin(`frame${seq}`, seq, [loc], { actor: x86.actor, what: x86.what, transformation: '' }, 'an exception frame the processor pushed', bytes);
        return this.defGroup(step.seq, loc, this.stepDefs(step).get(loc), { actor: x86.actor, what: x86.what, transformation: `store${smm}` }, bytes);
      }
      case 'dma': {
        const request = this.session.event(src.request) as EventOf<'dma.request'>;
        const position = memOf(loc).offset - (request.hpa % PAGE_SIZE);
        const text = { actor: `device ${pciBdfFormat(request.sid)} (${this.session.domain(request.dom)})`, what: `receive DMA at iova 0x${request.iova.toString(16)}`, transformation: `DMA write through VT-d${smm}` };
        return { key: `dma${seq}`, seq, locs: [loc], text, bytes, sources: [{ loc: eventLoc(src.request, position), at: src.request }] };
      }
      case 'copy': {
        const copy = this.session.event(src.copy) as EventOf<'netback.copy'>;
        const position = memOf(loc).offset - copy.offset;
        const text = { actor: 'dom0 netback', what: `grant copy into ${this.session.domain(copy.dom)}'s gfn ${copy.gfn}`, transformation: `grant copy (dom0 holds the plaintext)${smm}` };
        return { key: `copy${seq}`, seq, locs: [loc], text, bytes, sources: [{ loc: eventLoc(src.copy, position), at: src.copy }] };
      }
      default: {
        const { actor, what, origin: text } = this.originOfWrite(write, step);
        return origin(`write${seq}`, seq, [loc], { actor, what, transformation: smm.slice(2) }, text, bytes);
      }
    }
  }

  private originOfWrite(write: WriteInfo, step: StepRecord): { actor: string; what: string; origin: string } {
    const dom = this.session.domain(write.event.dom);
    const src = write.source;
    switch (src.kind) {
      case 'scripted': return { actor: `${dom} (scripted)`, what: `op #${src.pc} ${src.op.op}`, origin: `scenario: ${dom}'s operation #${src.pc} (${src.op.op}${src.op.op === 'write' ? ` at gpa 0x${src.op.gpa.toString(16)}` : ''})` };
      case 'canary': return { actor: `${dom} (scripted)`, what: 'plants a canary', origin: `scenario plant: the canary secret ${dom} planted (guest.canary at seq ${src.canary})` };
      case 'image': return { actor: 'domain builder', what: `loads ${dom}'s image`, origin: `guest image of ${dom} (loaded by the domain builder at seq ${write.seq})` };
      case 'device': return { actor: step.events.some((e) => e.kind === 'netback.copy') ? 'dom0 netback' : 'NIC', what: 'descriptor write-back', origin: 'the device\'s descriptor write-back (length and status)' };
      case 'hypervisor': return { actor: 'Xen', what: 'exit handler writes guest memory', origin: `Xen's exit handler (seq ${step.seq})` };
      default: return { actor: dom, what: 'mem.write', origin: `a write of unknown source at seq ${write.seq}` };
    }
  }

  private stepDefs(step: StepRecord): Map<Loc, Def> {
    let defs = this.defCache.get(step);
    if (defs === undefined) {
      defs = new Map();
      for (const def of stepSeqDefs(step)) if (def.seq === step.seq) defs.set(def.dest, def);
      this.defCache.set(step, defs);
    }
    return defs;
  }

  /** A byte an x86 step made: from its sources (before the step), or an origin. */
  private defGroup(seq: Seq, loc: Loc, def: Def | undefined, text: HopText, bytes: number[] = []): Group {
    if (def === undefined) return origin(`nodef${seq}`, seq, [loc], text, 'an x86 step the flow rules do not cover', bytes);
    if (def.origin !== undefined) {
      const what = def.origin === 'immediate' ? `an immediate of ${text.what} (seq ${seq})`
        : def.origin === 'hypervisor' ? `Xen wrote the register (seq ${seq})`
          : def.origin === 'cpu' ? `read from the processor by ${text.what} (seq ${seq})`
            : `a constant the processor made for ${text.what} (seq ${seq})`;
      return origin(`${def.origin}${seq}`, seq, [loc], text, what, bytes);
    }
    const transformation = copies(text.what) && def.srcs.length === 1 ? `${text.transformation}, copied` : `${text.transformation}, computed from ${def.srcs.length} byte${def.srcs.length === 1 ? '' : 's'}`;
    return { key: `${def.srcs.length === 1 ? 'copy' : 'mix'}${seq}`, seq, locs: [loc], text: { ...text, transformation }, bytes, sources: def.srcs.map((s) => ({ loc: s, at: seq })) };
  }

  // ---- registers: the last def of each byte ------------------------------------------------

  private registerGroups(locs: Loc[], at: Seq): Group[] {
    const groups: Group[] = [];
    for (const run of locRuns(locs)) {
      const r = regOf(run.first);
      const register = { dom: r.dom, vcpu: r.vcpu, slot: r.slot, byte: r.byte, length: run.length };
      const defs = lastRegisterDefs(this.session, register, at);
      registerByteLocs(register).forEach((loc, i) => groups.push(this.registerGroup(loc, defs[i])));
    }
    return groups;
  }

  private registerGroup(loc: Loc, def: SeqDef | undefined): Group {
    const r = regOf(loc);
    const vcpu = `${this.session.domain(r.dom)}.v${r.vcpu}`;
    if (def === undefined) return origin(`reset${r.dom}.${r.vcpu}`, 0, [loc], { actor: vcpu, what: 'reset', transformation: '' }, 'the register as the vCPU started (reset state)');
    const step = this.session.step(def.seq);
    const event = step.events[def.seq - step.seq];
    if (def.seq !== step.seq || step.replay === undefined) {
      const what = event.kind === 'vmcs.write' ? this.exitText(step) : `${event.kind}`;
      const actor = event.kind === 'vmcs.write' ? 'Xen' : vcpu;
      return origin(`${event.kind}${def.seq}`, def.seq, [loc], { actor, what, transformation: '' }, event.kind === 'vmcs.write' ? `Xen set the register: ${what} (seq ${def.seq})` : `the processor set the register (${event.kind}, seq ${def.seq})`);
    }
    const x86 = this.session.x86Text(step.replay);
    return this.defGroup(def.seq, loc, def, { ...x86, transformation: 'register' });
  }

  /** What the exit handler did, named by the exit of its step. */
  private exitText(step: StepRecord): string {
    const exit = step.events[0];
    if (exit.kind !== 'vm.exit') return 'vmcs.write';
    const mmio = step.events.find((e) => e.kind === 'pci.mmio' && !e.write);
    if (mmio !== undefined && mmio.kind === 'pci.mmio') return `emulated MMIO read of the VF's BAR${mmio.bar} offset 0x${mmio.offset.toString(16)} (value 0x${mmio.value.toString(16)})`;
    const call = step.events.find((e) => e.kind === 'hypercall');
    if (call !== undefined && call.kind === 'hypercall') return `hypercall ${call.op} returned ${call.result}`;
    const io = step.events.find((e) => e.kind === 'io' && !e.out);
    if (io !== undefined && io.kind === 'io') return `port read of 0x${io.port.toString(16)} (value 0x${io.value.toString(16)})`;
    return `exit handler (reason ${exit.reason})`;
  }

  // ---- bytes an event carries: the NIC's path ----------------------------------------------

  private eventGroups(locs: Loc[]): Group[] {
    const bySeq = new Map<Seq, number[]>();
    for (const loc of locs) {
      const { seq, position } = eventOf(loc);
      bySeq.set(seq, [...(bySeq.get(seq) ?? []), position]);
    }
    const groups: Group[] = [];
    for (const [seq, positions] of bySeq) {
      const step = this.session.step(seq);
      const event = step.events[seq - step.seq];
      const flow = eventSources(step, seq, positions);
      const data = event.kind === 'net.frame' ? event.frame : event.kind === 'dma.request' || event.kind === 'netback.copy' ? event.data : new Uint8Array(0);
      const actor = this.eventActor(seq);
      positions.forEach((position, i) => {
        const source: ByteSource = flow.sources[i];
        const loc = eventLoc(seq, position);
        const bytes = position < data.length ? [data[position]] : [];
        const text = { actor, what: this.session.eventName(seq), transformation: flow.transformation };
        if (source.kind === 'origin') groups.push(origin(`eo${seq}:${source.origin}`, seq, [loc], text, source.origin, bytes));
        else groups.push({ key: `ev${seq}`, seq, locs: [loc], text, bytes, sources: [{ loc: source.loc, at: source.at }] });
      });
    }
    return groups;
  }

  private eventActor(seq: Seq): string {
    const e = this.session.event(seq);
    if (e.kind === 'net.frame') return e.at === 'switch' ? 'the switch' : e.at.startsWith('netback') ? 'dom0 netback' : e.at.startsWith('siom') ? 'SIOM' : e.at.startsWith('wire') ? 'the wire' : `NIC ${e.at.split('.')[0].toUpperCase()}`;
    if (e.kind === 'dma.request') return `device ${pciBdfFormat(e.sid)} (${this.session.domain(e.dom)})`;
    if (e.kind === 'netback.copy') return 'dom0 netback';
    return e.kind;
  }
}

/** Instructions that move bytes unchanged (the others compute). */
const MOVES = /^(rep |repne )?(mov|movzx|movsx|xchg|push|pop|pushad|popad|pushfd|movs[bwd]|stos[bwd]|lods[bwd])\b/;
const copies = (instruction: string): boolean => MOVES.test(instruction);

function origin(key: string, seq: Seq, locs: Loc[], text: HopText, what: string, bytes: number[] = []): Group {
  return { key: `o:${key}`, seq, locs, text: { ...text, origin: what }, bytes, sources: [] };
}

/** The byte a write left at `loc` (its plaintext), if the walk kept it. */
function byteOf(write: WriteInfo, loc: Loc): number[] {
  const at = memOf(loc).offset - write.dataOffset;
  return write.after !== undefined && at >= 0 && at < write.after.length ? [write.after[at]] : [];
}

/** Joins groups of consecutive bytes made by the same thing (same key, and the same sources shifted). */
function merge(groups: Group[]): Group[] {
  const out: Group[] = [];
  for (const g of groups) {
    const last = out.at(-1);
    if (last !== undefined && last.key === g.key && adjacent(last.locs.at(-1)!, g.locs[0])) {
      out[out.length - 1] = {
        ...last,
        locs: [...last.locs, ...g.locs],
        sources: [...last.sources, ...g.sources],
        bytes: [...last.bytes, ...g.bytes],
      };
      continue;
    }
    out.push(g);
  }
  return out;
}

function adjacent(a: Loc, b: Loc): boolean {
  if (isRegLoc(a)) return isRegLoc(b) && a - 1 === b && regOf(a).slot === regOf(b).slot;
  return b === a + 1;
}

/**
 * A query done in steps: it yields how many hops it has made so far (progress, against the
 * budget) and returns its answer. The TUI runs one a slice at a time; the CLI all at once.
 */
export type QuerySteps<T> = Generator<number, T>;

/** Runs a query's steps to the end. */
export function finish<T>(steps: QuerySteps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** The provenance of an address's bytes as they were at position `at`. */
export function provenanceSteps(session: ForensicSession, resolved: Resolved, at: Seq, options: ProvenanceOptions = {}): QuerySteps<Provenance> {
  const locs = resolved.kind === 'memory' ? rangeLocs(resolved.ranges) : registerByteLocs(resolved.register);
  return traceLocs(session, locs, at, options);
}

export function provenance(session: ForensicSession, resolved: Resolved, at: Seq, options: ProvenanceOptions = {}): Provenance {
  return finish(provenanceSteps(session, resolved, at, options));
}

/** The provenance of the bytes an event carries (a frame at a point, a DMA's or a copy's data). */
export function eventProvenanceSteps(session: ForensicSession, seq: Seq, end: number, options: ProvenanceOptions = {}, start = 0): QuerySteps<Provenance> {
  return traceLocs(session, Array.from({ length: end - start }, (_, p) => eventLoc(seq, start + p)), seq, options);
}

function* traceLocs(session: ForensicSession, locs: Loc[], at: Seq, options: ProvenanceOptions): QuerySteps<Provenance> {
  const tracer = new Tracer(session, options);
  const roots = yield* tracer.trace(locs, at, 0);
  return { roots, hops: tracer.hops, origins: tracer.origins, cut: tracer.cut };
}

function hopLine(hop: Hop): string {
  const how = hop.transformation === '' ? '' : ` [${hop.transformation}]`;
  const bytes = hop.bytes === undefined ? '' : ` = ${hop.bytes}`;
  const made = hop.origin === undefined ? '' : `  ORIGIN: ${hop.origin}`;
  return `#${hop.id} seq ${hop.seq} ${hop.actor}: ${hop.what}${how} -> ${hop.to}${bytes}${made}${hop.cut ? '  (not followed further: budget)' : ''}`;
}

/** The hops as a tree, depth first, each hop once (later mentions point back to it), each line with its hop's seq. */
export function provenanceRows(result: Provenance): { text: string; seq: Seq }[] {
  const rows: { text: string; seq: Seq }[] = [];
  const shown = new Set<number>();
  const visit = (id: number, depth: number): void => {
    const hop = result.hops[id];
    if (shown.has(id)) {
      rows.push({ text: `${'  '.repeat(depth)}#${id} (above)`, seq: hop.seq });
      return;
    }
    shown.add(id);
    rows.push({ text: `${'  '.repeat(depth)}${hopLine(hop)}`, seq: hop.seq });
    for (const from of hop.from) visit(from, depth + 1);
  };
  for (const root of result.roots) visit(root, 0);
  return rows;
}
