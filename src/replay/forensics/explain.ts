/**
 * `explain`: why an invariant broke at a violation event. The machine checks each event
 * against the invariants before applying it and appends the violations at the end of the
 * step, so the access that broke the rule is the event of that step which, checked again
 * against the state before it, gives the same breach. Then: the provenance of the data the
 * access carried, and the ownership, key and mapping events of the frame that made the
 * access possible, as the short chain of seqs a reader follows.
 */
import type { Event, EventOf, Seq } from '../../events/schema.ts';
import { InputError } from '../../events/errors.ts';
import { INVARIANT_CHECKERS } from '../../core/machine/invariants/index.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import { eventText } from '../format.ts';
import { formatHostRange } from './address.ts';
import { describeAccess, eventActor, type AccessRow } from './describe.ts';
import { eventProvenanceSteps, finish, provenanceSteps, type Hop, type Provenance, type QuerySteps } from './provenance.ts';
import type { ForensicSession } from './session.ts';
import { AccessKind, type Access } from './steps.ts';

export interface Explanation {
  seq: Seq;
  invariant: string;
  /** The invariant's rule in one sentence. */
  rule: string;
  detail: string;
  /** The event that broke the rule. */
  access: { seq: Seq; actor: string; what: string; event: string };
  /** The data the access carried, and where it came from (absent when it carried none). */
  data?: { bytes: string; provenance: Provenance };
  /** The frame's ownership, key and mapping changes that made the access possible, oldest first. */
  enabling: AccessRow[];
  /** The seqs to read, in order: enabling events, the data's origins, the access, the violation. */
  chain: Seq[];
}

/** Hops followed for the data (explain shows the origins; provenance shows all). */
const DATA_BUDGET = 200;
/** Mappings of the frame listed at most (the newest). */
const MAPS_SHOWN = 3;

/** The event of the violation's step that, checked again, gives this breach. */
function breakingAccess(session: ForensicSession, seq: Seq, violation: EventOf<'violation'>): Seq {
  const checker = INVARIANT_CHECKERS.find((c) => c.name === violation.invariant)!;
  const step = session.step(seq);
  for (let i = 0; step.seq + i < seq; i++) {
    const event = step.events[i];
    if (!checker.kinds.includes(event.kind)) continue;
    const breach = checker.check(session.timeline.stateAt(step.seq + i), event);
    if (breach !== undefined && breach.dom === violation.dom && breach.mfn === violation.mfn && breach.detail === violation.detail) return step.seq + i;
  }
  return step.seq;
}

/** The data an access carried: host bytes it read, or the bytes the event carries. */
function* dataOf(session: ForensicSession, seq: Seq, event: Event, spoof: boolean): QuerySteps<Explanation['data']> {
  const options = { budget: DATA_BUDGET };
  switch (event.kind) {
    case 'mem.read':
    case 'dom0.foreign_read': {
      const length = Math.min(event.kind === 'mem.read' ? event.stored.length : event.value.length, PAGE_SIZE - event.offset);
      if (length === 0) return undefined;
      const range = { mfn: event.mfn, offset: event.offset, length };
      return { bytes: formatHostRange(range), provenance: yield* provenanceSteps(session, { kind: 'memory', ranges: [range] }, seq, options) };
    }
    case 'net.frame':
      // A frame sent as another domain: what matters is where its source MAC came from.
      if (spoof) return { bytes: `${session.eventName(seq)}[6..11] (the source MAC)`, provenance: yield* eventProvenanceSteps(session, seq, 12, options, 6) };
      return { bytes: `${session.eventName(seq)}[0..${event.frame.length - 1}]`, provenance: yield* eventProvenanceSteps(session, seq, event.frame.length, options) };
    case 'netback.copy':
    case 'dma.request': {
      if (event.data.length === 0) return undefined;
      return { bytes: `${session.eventName(seq)}[0..${event.data.length - 1}]`, provenance: yield* eventProvenanceSteps(session, seq, event.data.length, options) };
    }
    default:
      return undefined;
  }
}

/**
 * What made an access to frame `mfn` possible: its last change of owner and of key, its last
 * unmapping since, and its newest mappings since the owner changed.
 */
function enablingAccesses(session: ForensicSession, mfn: number, before: Seq): Access[] {
  const kinds = (1 << AccessKind.OWN) | (1 << AccessKind.KEY) | (1 << AccessKind.MAP) | (1 << AccessKind.UNMAP);
  let own: Access | undefined;
  let key: Access | undefined;
  let unmap: Access | undefined;
  const maps: Access[] = [];
  for (const a of session.index.accesses(mfn, 0, before, { newestFirst: true, kinds })) {
    if (a.kind === AccessKind.OWN) { own = a; break; }
    if (a.kind === AccessKind.KEY) key ??= a;
    else if (a.kind === AccessKind.UNMAP) unmap ??= a;
    else if (maps.length < MAPS_SHOWN && !maps.some((m) => m.seq === a.seq)) maps.push(a);
  }
  return [own, key, unmap, ...maps].filter((a): a is Access => a !== undefined).sort((a, b) => a.seq - b.seq);
}

export function explain(session: ForensicSession, seq: Seq): Explanation {
  return finish(explainSteps(session, seq));
}

/** `explain` in steps (the TUI runs it a slice at a time); it yields as the data's provenance grows. */
export function* explainSteps(session: ForensicSession, seq: Seq): QuerySteps<Explanation> {
  const violation = session.event(seq);
  if (violation.kind !== 'violation') {
    throw new InputError('argument', `SEQ ${seq}: a ${violation.kind} event, not a violation; list them with 'log --kind violation'`);
  }
  const checker = INVARIANT_CHECKERS.find((c) => c.name === violation.invariant);
  const accessSeq = breakingAccess(session, seq, violation);
  const event = session.event(accessSeq);
  const { actor, what } = describedEvent(session, accessSeq, event, violation.mfn);
  const data = yield* dataOf(session, accessSeq, event, violation.invariant === 'net-isolation' && / sent a frame as /.test(violation.detail));
  // A vCPU's TLB is its own cache: it made the access possible only when that vCPU made it.
  const enabling = (violation.mfn < 0 ? [] : enablingAccesses(session, violation.mfn, accessSeq).map((a) => describeAccess(session, a)))
    .filter((row) => !row.actor.endsWith(' TLB') || actor.startsWith(row.actor.slice(0, -' TLB'.length)));
  const origins = data === undefined ? [] : data.provenance.origins.map((id) => data.provenance.hops[id].seq).filter((s) => s > 0);
  const chain = [...new Set([...enabling.map((r) => r.seq), ...origins, accessSeq, seq])].sort((a, b) => a - b);
  return {
    seq, invariant: violation.invariant, rule: checker?.rule ?? '(an invariant this version does not know)', detail: violation.detail,
    access: { seq: accessSeq, actor, what, event: eventText(event, session.domainNames) },
    ...(data !== undefined ? { data } : {}), enabling, chain,
  };
}

/** Who made the access and what it was: as history names it when it touches the frame. */
function describedEvent(session: ForensicSession, seq: Seq, event: Event, mfn: number): { actor: string; what: string } {
  if (mfn >= 0) {
    const it = session.index.accesses(mfn, seq, seq + 1);
    const first = it.next();
    it.return(undefined);
    if (!first.done) return describeAccess(session, first.value);
  }
  return eventActor(session, event);
}

/** A line of a query's text, with the seq a reader may jump to from it (the TUI's panes). */
export interface TextRow {
  text: string;
  seq?: Seq;
}

const ORIGINS_SHOWN = 12;

/** An explanation as lines, each with the seq it is about (the CLI prints the text, the TUI jumps to the seqs). */
export function explanationRows(x: Explanation): TextRow[] {
  const rows: TextRow[] = [
    { text: `violation ${x.invariant} at seq ${x.seq}: ${x.detail}`, seq: x.seq },
    { text: `  rule: ${x.rule}` },
    { text: `  the access: seq ${x.access.seq} ${x.access.actor}: ${x.access.what}`, seq: x.access.seq },
  ];
  if (x.data !== undefined) {
    const p = x.data.provenance;
    rows.push({ text: `  the data: ${x.data.bytes}, from ${p.origins.length} origin${p.origins.length === 1 ? '' : 's'} (${p.hops.length} hops${p.cut ? ', cut short: run provenance for all' : ''}):` });
    // One line per origin, with every piece of the data it made.
    const byOrigin = new Map<string, Hop[]>();
    for (const id of p.origins) byOrigin.set(p.hops[id].origin!, [...(byOrigin.get(p.hops[id].origin!) ?? []), p.hops[id]]);
    for (const [origin, hops] of [...byOrigin].slice(0, ORIGINS_SHOWN)) rows.push({ text: `    ${hops.map((h) => h.to).join(' + ')}: ${origin}`, seq: hops[0].seq });
    if (byOrigin.size > ORIGINS_SHOWN) rows.push({ text: `    ${byOrigin.size - ORIGINS_SHOWN} more origins: run provenance for all` });
  }
  if (x.enabling.length > 0) rows.push({ text: '  what made it possible:' });
  for (const row of x.enabling) rows.push({ text: `    seq ${row.seq} ${row.access} ${row.actor}: ${row.what}`, seq: row.seq });
  rows.push({ text: `  chain: ${x.chain.join(' -> ')}` });
  return rows;
}

/** An explanation as text lines (the CLI, and fuzz for each counterexample it records). */
export function explanationLines(x: Explanation): string[] {
  return explanationRows(x).map((r) => r.text);
}
