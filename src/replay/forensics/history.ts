/**
 * `history` and `who-wrote`: every access to an address in a range of seqs, and the last
 * writer of each of its bytes before a seq. Both read the index for the seqs, then re-walk
 * only the steps they name to say who and what.
 */
import type { Seq } from '../../events/schema.ts';
import { formatHostRange, formatRegister, type HostRange, type Resolved } from './address.ts';
import { describeAccess, type AccessRow } from './describe.ts';
import { ACCESS_NAMES, AccessKind, type Access } from './steps.ts';
import { lastRegisterDefs, registerDefs, type SeqDef } from './register-defs.ts';
import type { ForensicSession } from './session.ts';
import { regOf } from './locations.ts';

export interface HistoryOptions {
  from: Seq;
  to: Seq;
  /** Access names to keep (r, w, x, map, ...); all when empty. */
  kinds: readonly string[];
  limit: number;
}

/** The accesses to the bytes of `ranges` (frames whole for map/unmap/own/key/scrub), merged in seq order. */
function* memoryAccesses(session: ForensicSession, ranges: readonly HostRange[], from: Seq, to: Seq): Generator<Access> {
  const iterators = ranges.map((range) => session.index.accesses(range.mfn, from, to));
  const streams = ranges.map((range, i) => {
    const overlaps = (a: Access): boolean => a.offset < range.offset + range.length && range.offset < a.offset + a.length;
    return (): Access | undefined => {
      for (let r = iterators[i].next(); !r.done; r = iterators[i].next()) if (overlaps(r.value)) return r.value;
      return undefined;
    };
  });
  try {
    const heads = streams.map((next) => next());
    for (;;) {
      let best = -1;
      heads.forEach((h, i) => { if (h !== undefined && (best < 0 || h.seq < heads[best]!.seq)) best = i; });
      if (best < 0) return;
      yield heads[best]!;
      heads[best] = streams[best]();
    }
  } finally {
    // A query that stops early closes the index's statements (SQLite keeps them busy otherwise).
    for (const it of iterators) it.return(undefined);
  }
}

/** A register write as a history row. */
function registerRow(session: ForensicSession, def: SeqDef): AccessRow {
  const step = session.step(def.seq);
  const event = step.events[def.seq - step.seq];
  const r = regOf(def.dest);
  const bytes = formatRegister({ dom: r.dom, vcpu: r.vcpu, slot: r.slot, byte: r.byte, length: 1 }, session.domainNames);
  if (def.seq === step.seq && step.replay !== undefined) {
    const { actor, what } = session.x86Text(step.replay);
    return { seq: def.seq, access: 'w', actor, what, bytes, event: event.kind };
  }
  return { seq: def.seq, access: 'w', actor: def.origin === 'hypervisor' ? 'Xen' : 'processor', what: `${event.kind} sets it`, bytes, event: event.kind };
}

/** History rows of an address, oldest first. */
export function* history(session: ForensicSession, resolved: Resolved, options: HistoryOptions): Generator<AccessRow> {
  const wanted = new Set(options.kinds);
  let shown = 0;
  if (resolved.kind === 'register') {
    if (wanted.size > 0 && !wanted.has('w')) return;
    let last = -1;
    for (const def of registerDefs(session, resolved.register, options.from, options.to)) {
      // One row per event, whichever of the register's bytes it wrote.
      if (def.seq === last) continue;
      last = def.seq;
      yield registerRow(session, def);
      if (++shown >= options.limit) return;
    }
    return;
  }
  for (const access of memoryAccesses(session, resolved.ranges, options.from, options.to)) {
    if (wanted.size > 0 && !wanted.has(ACCESS_NAMES[access.kind])) continue;
    yield describeAccess(session, access);
    if (++shown >= options.limit) return;
  }
}

/** A run of bytes with the same last writer. */
export interface WriterRun {
  /** The bytes: `mfn:321/31` or `reg:erin.v0:eax`. */
  bytes: string;
  /** Undefined: never written since the recording began. */
  writer: AccessRow | undefined;
  /** In the secure profile, a later write that re-encrypted these bytes' line without changing them. */
  reencrypted?: { seq: Seq; by: string };
}

/** For each byte of the address, the last write before `at`, grouped into runs of bytes with the same writer. */
export function whoWrote(session: ForensicSession, resolved: Resolved, at: Seq): WriterRun[] {
  if (resolved.kind === 'register') return registerWriters(session, resolved, at);
  const lasts = resolved.ranges.map((range) => ({ range, data: session.index.lastWrites(range, at, true), physical: session.index.lastWrites(range, at, false) }));
  // Described oldest first: the steps are folded to in one pass forwards, not one fold each.
  const described = new Map<string, AccessRow>();
  const writes = lasts.flatMap((l) => [...l.data, ...l.physical]).filter((a): a is Access => a !== undefined);
  for (const access of writes.sort((a, b) => a.seq - b.seq)) {
    const key = `${access.mfn}@${access.seq}`;
    if (!described.has(key)) described.set(key, describeAccess(session, access));
  }
  const runs: WriterRun[] = [];
  for (const { range, data, physical } of lasts) {
    let start = 0;
    for (let i = 1; i <= range.length; i++) {
      const same = i < range.length && data[i]?.seq === data[start]?.seq && physical[i]?.seq === physical[start]?.seq;
      if (same) continue;
      const bytes = formatHostRange({ mfn: range.mfn, offset: range.offset + start, length: i - start });
      const writer = data[start];
      const later = physical[start];
      const run: WriterRun = { bytes, writer: writer === undefined ? undefined : described.get(`${writer.mfn}@${writer.seq}`) };
      if (later !== undefined && later.seq !== writer?.seq && later.kind === AccessKind.WRITE) {
        run.reencrypted = { seq: later.seq, by: described.get(`${later.mfn}@${later.seq}`)!.actor };
      }
      runs.push(run);
      start = i;
    }
  }
  return runs;
}

function registerWriters(session: ForensicSession, resolved: Extract<Resolved, { kind: 'register' }>, at: Seq): WriterRun[] {
  const defs = lastRegisterDefs(session, resolved.register, at);
  const runs: WriterRun[] = [];
  let start = 0;
  for (let i = 1; i <= defs.length; i++) {
    if (i < defs.length && defs[i]?.seq === defs[start]?.seq) continue;
    const r = resolved.register;
    const bytes = formatRegister({ ...r, byte: r.byte + start, length: i - start }, session.domainNames);
    runs.push({ bytes, writer: defs[start] === undefined ? undefined : registerRow(session, defs[start]!) });
    start = i;
  }
  return runs;
}

