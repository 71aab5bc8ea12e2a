/**
 * Mutation of corpus entries, the guided mode's second source of cases beside fresh
 * generation: an entry's action list is edited (an action replaced, inserted, deleted,
 * repeated, moved, spliced with another entry's) and single actions are nudged where a small
 * step is meaningful (an IOVA one page on, the next interrupt handle, a neighbour's gfn). A
 * nudge keeps every value in the range the generators use, so a mutant is a valid case.
 */
import type { CaseShape } from './case.ts';
import { TENANTS, VF_SIDS, type Action } from './actions.ts';

/** A seeded generator (mulberry32): the guided loop's only randomness besides fast-check's. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in 0 .. n-1. */
  below(n: number): number {
    return this.next() % n;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p * 0x1_0000_0000;
  }
}

export interface Candidate {
  shape: CaseShape;
  actions: Action[];
}

/** A case kept because it reached something new; `features` are the ones it was first to reach. */
export interface CorpusEntry extends Candidate {
  features: string[];
}

/** What a mutation may ask for: fresh actions and another corpus entry to splice with. */
export interface MutationSources {
  freshAction: () => Action;
  other: () => Candidate;
  maxActions: number;
}

const PAGE_BYTES = 4096;
/** Steps a nudge takes on an address or a frame number. */
const ADDRESS_STEPS = [PAGE_BYTES, -PAGE_BYTES, 1, -1, 64, -64];
const INDEX_STEPS = [1, -1];

/** A guest operation's numeric fields a nudge may change, with the steps that make sense for each. */
const OP_FIELD_STEPS: Record<string, number[]> = { gpa: ADDRESS_STEPS, buffer: ADDRESS_STEPS, gfn: INDEX_STEPS, gpfn: INDEX_STEPS, domid: INDEX_STEPS, count: INDEX_STEPS, len: [1, -1, 8, -8] };
/** Bounds of the fields, as the scenario schema takes them (-1 is a gfn the generators do use). */
const OP_FIELD_MIN: Record<string, number> = { gpa: 0, buffer: 0, gfn: -1, gpfn: -1, domid: -1, count: 1, len: 1 };
const ADDRESS_MAX = 0xffff_ffff;
const OP_FIELD_MAX: Record<string, number> = { gpa: ADDRESS_MAX, buffer: ADDRESS_MAX, len: 4 * PAGE_BYTES };

function nudgeOp(op: unknown, rng: Prng): unknown {
  if (typeof op !== 'object' || op === null) return op;
  const [name, body] = Object.entries(op as Record<string, Record<string, unknown>>)[0];
  if (typeof body !== 'object' || body === null) return op;
  const fields = Object.keys(body).filter((k) => k in OP_FIELD_STEPS && typeof body[k] === 'number');
  if (fields.length === 0) return op;
  const field = rng.pick(fields);
  const value = Math.min(OP_FIELD_MAX[field] ?? Infinity, Math.max(OP_FIELD_MIN[field], (body[field] as number) + rng.pick(OP_FIELD_STEPS[field])));
  return { [name]: { ...body, [field]: value } };
}

/** MSI address with the next or previous interrupt handle (remappable format keeps its format bits). */
function nudgeMsiAddress(address: number, rng: Prng): number {
  const remappable = (address & 0x10) !== 0;
  if (!remappable) return (address ^ (1 << (12 + rng.below(2)))) >>> 0;
  const handle = Math.max(0, Math.min(0x7fff, ((address >>> 5) & 0x7fff) + rng.pick(INDEX_STEPS)));
  return ((address & ~(0x7fff << 5)) | (handle << 5)) >>> 0;
}

/** A small step on one of the action's values. */
function nudge(action: Action, rng: Prng): Action {
  switch (action.kind) {
    case 'dma':
      return rng.chance(0.7)
        ? { ...action, iova: Math.min(ADDRESS_MAX, Math.max(0, action.iova + rng.pick(ADDRESS_STEPS))) }
        : { ...action, vf: 1 + ((action.vf - 1 + rng.pick([1, 3])) % 4) };
    case 'msi': {
      if (rng.chance(0.6)) return { ...action, address: nudgeMsiAddress(action.address, rng) };
      const at = VF_SIDS.indexOf(action.sid);
      return { ...action, sid: at < 0 ? rng.pick(VF_SIDS) : rng.chance(0.5) ? VF_SIDS[(at + 1) % VF_SIDS.length] : action.sid ^ 1 };
    }
    case 'guest': {
      const i = rng.below(action.ops.length);
      return { ...action, ops: action.ops.map((op, j) => (j === i ? nudgeOp(op, rng) : op)) };
    }
    case 'dom0':
      if (action.args && rng.chance(0.5)) return { ...action, args: [Math.max(0, action.args[0] + rng.pick(INDEX_STEPS)), action.args[1], action.args[2]] };
      return action.domain === '-' ? action : { ...action, domain: rng.pick(TENANTS) };
    case 'x86': {
      // A byte of the program body flipped (not the loop counter's or the park's bytes).
      const bytes = Buffer.from(action.image, 'hex');
      if (bytes.length <= 12) return action;
      const at = 5 + rng.below(bytes.length - 12);
      bytes[at] ^= 1 << rng.below(8);
      return { ...action, image: bytes.toString('hex') };
    }
    case 'wire':
      return action;
  }
}

type Edit = (actions: Action[], rng: Prng, sources: MutationSources) => Action[];

const at = (actions: Action[], rng: Prng): number => rng.below(actions.length);

const nudgeOne: Edit = (a, rng) => replaceAt(a, at(a, rng), (x) => nudge(x, rng));

/** The edits, a nudge twice as likely as each other edit (it is what walks toward a boundary). */
const EDITS: Edit[] = [
  nudgeOne,
  nudgeOne,
  (a, rng, s) => replaceAt(a, at(a, rng), () => s.freshAction()),
  (a, rng, s) => insertAt(a, rng.below(a.length + 1), s.freshAction()),
  (a, rng) => (a.length > 1 ? a.filter((_, i) => i !== at(a, rng)) : a),
  (a, rng) => { const i = at(a, rng); return insertAt(a, i, a[i]); },
  (a, rng) => { const i = at(a, rng), j = at(a, rng); const b = [...a]; [b[i], b[j]] = [b[j], b[i]]; return b; },
  (a, rng, s) => { const other = s.other().actions; return [...a.slice(0, rng.below(a.length + 1)), ...other.slice(rng.below(other.length + 1))]; },
];

function replaceAt(actions: Action[], i: number, f: (a: Action) => Action): Action[] {
  return actions.map((a, j) => (j === i ? f(a) : a));
}

function insertAt(actions: Action[], i: number, action: Action): Action[] {
  return [...actions.slice(0, i), action, ...actions.slice(i)];
}

/** One to three edits of an entry's actions, kept within maxActions and never empty. */
export function mutate(entry: Candidate, rng: Prng, sources: MutationSources): Candidate {
  let actions = entry.actions.length > 0 ? entry.actions : [sources.freshAction()];
  const edits = 1 + rng.below(3);
  for (let i = 0; i < edits; i++) {
    actions = rng.pick(EDITS)(actions, rng, sources);
    if (actions.length === 0) actions = [sources.freshAction()];
  }
  return { shape: entry.shape, actions: actions.slice(0, sources.maxActions) };
}
