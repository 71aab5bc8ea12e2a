/**
 * Who wrote a register, and from what: the defs of every x86 step (the instruction's, by its
 * rule in x86-flows.ts, silent writes included) and the register writes of the hypervisor
 * and of event delivery (the deltas of vmcs.write, vm.entry, exception, vcpu.halt). The
 * index says which chunks wrote a register at all, so only those are walked again.
 */
import { CHUNK_EVENTS } from '../../events/store.ts';
import type { Event, Seq } from '../../events/schema.ts';
import type { RegisterBytes } from './address.ts';
import { regLoc, type Loc } from './locations.ts';
import type { ForensicSession } from './session.ts';
import type { StepRecord } from './steps.ts';
import { deltaDefs, stepDefs, type Def } from './x86-flows.ts';

/** A def with the seq of the event that made it (the step opener for an instruction). */
export interface SeqDef extends Def {
  seq: Seq;
}

const DELTA_KINDS = new Set(['vmcs.write', 'vm.entry', 'exception', 'vcpu.halt']);

/** Every def a step makes, in order: the instruction's (or delivery's) first, then the deltas after it. */
export function stepSeqDefs(step: StepRecord): SeqDef[] {
  const defs: SeqDef[] = step.replay === undefined ? [] : stepDefs(step.replay).map((d) => ({ ...d, seq: step.seq }));
  step.events.forEach((event: Event, i) => {
    if (!DELTA_KINDS.has(event.kind) || (i === 0 && event.kind === 'exception')) return;
    const e = event as Extract<Event, { kind: 'vmcs.write' | 'vm.entry' | 'exception' | 'vcpu.halt' }>;
    for (const def of deltaDefs(e.dom, e.vcpu, e.delta, event.kind === 'vmcs.write' ? 'hypervisor' : 'constant')) defs.push({ ...def, seq: step.seq + i });
  });
  return defs;
}

/** The locations of a register's bytes. */
export function registerByteLocs(r: RegisterBytes): Loc[] {
  return Array.from({ length: r.length }, (_, i) => regLoc(r.dom, r.vcpu, r.slot, r.byte + i));
}

/** The steps of a chunk, in order (up to `end`). */
function* chunkSteps(session: ForensicSession, chunk: Seq, end: Seq): Generator<StepRecord> {
  for (let seq = chunk; seq < Math.min(end, chunk + CHUNK_EVENTS, session.length);) {
    const step = session.step(seq);
    if (step.seq + step.events.length > chunk) yield step;
    seq = step.seq + step.events.length;
  }
}

/** The defs of `locs` (bytes of one register) with from <= seq < to, oldest first. */
export function* registerDefs(session: ForensicSession, r: RegisterBytes, from: Seq, to: Seq): Generator<SeqDef> {
  const wanted = new Set(registerByteLocs(r));
  const chunks = [...session.index.registerWriteChunks(r.dom, r.vcpu, r.slot, to)].filter((c) => c + CHUNK_EVENTS > from).reverse();
  for (const chunk of chunks) {
    for (const step of chunkSteps(session, chunk, to)) {
      for (const def of stepSeqDefs(step)) {
        if (def.seq >= from && def.seq < to && wanted.has(def.dest)) yield def;
      }
    }
  }
}

/** The last def of each of `locs` (bytes of one vCPU's register) before `before`. */
export function lastRegisterDefs(session: ForensicSession, r: RegisterBytes, before: Seq): (SeqDef | undefined)[] {
  const locs = registerByteLocs(r);
  const found: (SeqDef | undefined)[] = locs.map(() => undefined);
  for (const chunk of session.index.registerWriteChunks(r.dom, r.vcpu, r.slot, before)) {
    for (const step of chunkSteps(session, chunk, before)) {
      for (const def of stepSeqDefs(step)) {
        const at = locs.indexOf(def.dest);
        if (at >= 0 && def.seq < before && (found[at] === undefined || found[at]!.seq <= def.seq)) found[at] = def;
      }
    }
    if (found.every((d) => d !== undefined)) break;
  }
  return found;
}
