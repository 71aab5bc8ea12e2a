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

const stepDefCache = new WeakMap<StepRecord, SeqDef[]>();

/** Every def a step makes, in order: the instruction's (or delivery's) first, then the deltas after it. */
export function stepSeqDefs(step: StepRecord): SeqDef[] {
  let defs = stepDefCache.get(step);
  if (defs === undefined) stepDefCache.set(step, (defs = computeStepDefs(step)));
  return defs;
}

function computeStepDefs(step: StepRecord): SeqDef[] {
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

/** Chunks whose register defs are kept (a backward slice revisits few). */
const CHUNK_TABLES_KEPT = 32;
const chunkTables = new WeakMap<ForensicSession, Map<Seq, Map<Loc, SeqDef[]>>>();

/** Every register def made in a chunk, by location, oldest first (walked once per chunk). */
function chunkDefs(session: ForensicSession, chunk: Seq): Map<Loc, SeqDef[]> {
  let tables = chunkTables.get(session);
  if (tables === undefined) chunkTables.set(session, (tables = new Map()));
  let table = tables.get(chunk);
  if (table !== undefined) {
    tables.delete(chunk);
    tables.set(chunk, table);
    return table;
  }
  table = new Map();
  for (const step of chunkSteps(session, chunk, chunk + CHUNK_EVENTS)) {
    for (const def of stepSeqDefs(step)) {
      if (def.dest >= 0 || def.seq < chunk || def.seq >= chunk + CHUNK_EVENTS) continue;
      const list = table.get(def.dest);
      if (list === undefined) table.set(def.dest, [def]);
      else list.push(def);
    }
  }
  tables.set(chunk, table);
  if (tables.size > CHUNK_TABLES_KEPT) tables.delete(tables.keys().next().value as Seq);
  return table;
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
    const table = chunkDefs(session, chunk);
    locs.forEach((loc, i) => {
      if (found[i] !== undefined) return;
      const defs = table.get(loc) ?? [];
      // The last def before `before` (defs are in seq order).
      let lo = 0;
      let hi = defs.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (defs[mid].seq < before) lo = mid + 1;
        else hi = mid - 1;
      }
      if (hi >= 0) found[i] = defs[hi];
    });
    if (found.every((d) => d !== undefined)) break;
  }
  return found;
}
