/**
 * Aligning two runs by what their machines did, not by seq: two profiles of one scenario
 * emit different numbers of events (the secure one encrypts, scrubs, remaps), so the same
 * step sits at different seqs, and the boot event, which names the profile, differs at seq 0.
 *
 * Each run is read as steps (an opener and the events up to the next one; see STEP_OPENERS),
 * each with the tick it starts at and its actor (a vCPU, a pCPU's scheduler, dom0, the wire,
 * an input). Steps are paired tick by tick, and within a tick by actor (the k-th step of
 * alice.0 in A with the k-th in B). A pair differs when their behaviour does: the events
 * compared as `behaviourKey` writes them, which leaves out configuration events (the boot
 * event and inputs that set the profile, the quantum or a flaw) and how a profile stores
 * memory (encryption and key events, bytes as stored, the live SMM key) but keeps what
 * guests, dom0 and devices see and every violation. Consecutive ticks with differing steps
 * make a region. Both runs are read once, without caching chunks.
 */
import { EVENT_FIELDS, STEP_OPENERS, type Event, type EventKind, type Seq } from '../events/schema.ts';
import { evolve } from '../core/machine/evolve.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { Timeline } from './timeline.ts';

/** Events of how a profile keeps memory, not of what the machine does. */
const MECHANISM_KINDS: ReadonlySet<EventKind> = new Set<EventKind>(['mem.encrypt', 'mem.decrypt', 'smm.key.assign', 'smm.key.revoke']);
/**
 * Fields that say how memory is stored rather than what was written or read: the bytes as
 * stored (ciphertext under SMM) and where they start (SMM writes whole 64-byte lines), and
 * the key SMM has live on a pCPU.
 */
const REPRESENTATION_FIELDS: Partial<Record<EventKind, ReadonlySet<string>>> = {
  'mem.write': new Set(['offset', 'stored']),
  'mem.read': new Set(['offset', 'stored']),
  'sched.switch': new Set(['smmLive']),
};
/** Input keys that configure the machine rather than act on it. */
const CONFIGURATION_INPUT = /^(profile|quantum|flaw\..+)$/;

/** Whether an event is configuration (left out of the comparison): the boot event, a configuring input. */
export function isConfiguration(event: Event): boolean {
  return event.kind === 'machine.boot' || (event.kind === 'input' && CONFIGURATION_INPUT.test(event.key));
}

/** An event as compared across runs, or undefined for events that are not behaviour. */
export function behaviourKey(event: Event): string | undefined {
  if (isConfiguration(event) || MECHANISM_KINDS.has(event.kind)) return undefined;
  const record = event as unknown as Record<string, unknown>;
  const left = REPRESENTATION_FIELDS[event.kind];
  const fields = (EVENT_FIELDS[event.kind] as readonly string[]).filter((f) => left?.has(f) !== true);
  return `${event.kind} ${fields.map((f) => {
    const value = record[f];
    return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : JSON.stringify(value);
  }).join(' ')}`;
}

export interface Step {
  /** Its first seq and the seq after it. */
  seq: Seq;
  end: Seq;
  tick: number;
  actor: string;
  events: Event[];
}

/** Who takes a step, named by the opener (domains by name, so ids may differ). */
function actorOf(opener: Event, state: MachineState): string {
  const name = (dom: number): string => state.domains.get(dom)?.name ?? `d${dom}`;
  switch (opener.kind) {
    case 'guest.op': case 'cpu.step': case 'exception': case 'vm.exit': case 'vm.entry': return `${name(opener.dom)}.${opener.vcpu}`;
    case 'sched.switch': case 'sched.idle': return `pcpu${opener.pcpu}`;
    case 'dom0.op': return 'dom0';
    case 'wire.rx': return 'wire';
    case 'input': return 'input';
    default: return 'machine';
  }
}

/** A run's steps in order, each with the tick it starts at (a private state rolled along). */
export function* steps(timeline: Timeline, from: Seq = 0): Generator<Step> {
  const state = timeline.mutableStateAt(from);
  let current: Step | undefined;
  for (const [seq, event] of timeline.iterate(from, timeline.length, { cache: false })) {
    if (current === undefined || STEP_OPENERS.has(event.kind)) {
      if (current !== undefined) yield current;
      current = { seq, end: seq, tick: state.tick, actor: actorOf(event, state), events: [] };
    }
    current.events.push(event);
    current.end = seq + 1;
    evolve(state, event, true);
  }
  if (current !== undefined) yield current;
}

/** Two steps, or one with no partner on the other side. */
export interface AlignedPair {
  a?: Step;
  b?: Step;
  /** Index of the first behaviour event that differs (within the step's behaviour events), or -1. */
  differsAt: number;
}

/** A differing pair as shown: its actor and tick, and the first behaviour event that differs on each side (none: that side has no such event). */
export interface Example {
  actor: string;
  tick: number;
  a?: [Seq, Event];
  b?: [Seq, Event];
}

/** The `index`-th behaviour event of a step, with its seq. */
function behaviourEvent(step: Step | undefined, index: number): [Seq, Event] | undefined {
  if (step === undefined) return undefined;
  let seen = -1;
  for (let i = 0; i < step.events.length; i++) {
    if (behaviourKey(step.events[i]) !== undefined && ++seen === index) return [step.seq + i, step.events[i]];
  }
  return undefined;
}

function example(pair: AlignedPair): Example {
  const step = (pair.a ?? pair.b)!;
  return { actor: step.actor, tick: step.tick, a: behaviourEvent(pair.a, pair.differsAt), b: behaviourEvent(pair.b, pair.differsAt) };
}

export interface Region {
  /** Ticks [from, to] the region covers. */
  ticks: [number, number];
  /** Seqs [from, to) of each run in those ticks. */
  a: [Seq, Seq];
  b: [Seq, Seq];
  actors: string[];
  /** Differing pairs in the region, and the first few of them. */
  differing: number;
  first: Example[];
}

export interface Alignment {
  /** Steps paired with identical behaviour. */
  alike: number;
  regions: Region[];
  /** Regions found in all (only the first `limit` are kept in `regions`). */
  regionCount: number;
}

const behaviour = (step: Step | undefined): string[] => (step?.events ?? []).map(behaviourKey).filter((k): k is string => k !== undefined);

function compare(a: Step | undefined, b: Step | undefined): AlignedPair {
  const ka = behaviour(a);
  const kb = behaviour(b);
  let i = 0;
  while (i < ka.length && i < kb.length && ka[i] === kb[i]) i++;
  return { a, b, differsAt: i === ka.length && i === kb.length ? -1 : i };
}

/** Pairs the steps of one tick by actor, in order of occurrence. */
function pairBucket(as: Step[], bs: Step[]): AlignedPair[] {
  const queue = new Map<string, Step[]>();
  for (const b of bs) queue.set(b.actor, [...(queue.get(b.actor) ?? []), b]);
  const pairs = as.map((a) => compare(a, queue.get(a.actor)?.shift()));
  for (const rest of queue.values()) for (const b of rest) pairs.push(compare(undefined, b));
  return pairs;
}

/** Takes the steps at the front of `source` that start at `tick`. */
function takeTick(source: { next: Step | undefined; advance: () => void }, tick: number): Step[] {
  const taken: Step[] = [];
  while (source.next !== undefined && source.next.tick === tick) {
    taken.push(source.next);
    source.advance();
  }
  return taken;
}

function cursor(iterator: Generator<Step>): { next: Step | undefined; advance: () => void } {
  const c = { next: iterator.next().value as Step | undefined, advance: () => { c.next = iterator.next().value as Step | undefined; } };
  return c;
}

/**
 * Aligns two runs from `from` (a seq both share, at a step boundary) and returns the regions
 * where they behave differently, first first; `limit` regions are kept with `examples` pairs each.
 */
export function align(a: Timeline, b: Timeline, from: Seq, limit: number, examples = 3): Alignment {
  const ca = cursor(steps(a, from));
  const cb = cursor(steps(b, from));
  const result: Alignment = { alike: 0, regions: [], regionCount: 0 };
  let open: Region | undefined;
  const position = (c: typeof ca, t: Timeline): Seq => c.next?.seq ?? t.length;
  while (ca.next !== undefined || cb.next !== undefined) {
    const tick = Math.min(ca.next?.tick ?? Infinity, cb.next?.tick ?? Infinity);
    const start: [Seq, Seq] = [position(ca, a), position(cb, b)];
    const pairs = pairBucket(takeTick(ca, tick), takeTick(cb, tick));
    const differing = pairs.filter((p) => p.differsAt >= 0);
    result.alike += pairs.length - differing.length;
    if (differing.length === 0) {
      open = undefined;
      continue;
    }
    if (open === undefined) {
      open = { ticks: [tick, tick], a: [start[0], start[0]], b: [start[1], start[1]], actors: [], differing: 0, first: [] };
      if (result.regionCount++ < limit) result.regions.push(open);
    }
    open.ticks[1] = tick;
    open.a[1] = position(ca, a);
    open.b[1] = position(cb, b);
    open.differing += differing.length;
    for (const pair of differing) {
      const actor = (pair.a ?? pair.b)!.actor;
      if (!open.actors.includes(actor)) open.actors.push(actor);
      if (open.first.length < examples) open.first.push(example(pair));
    }
  }
  return result;
}
