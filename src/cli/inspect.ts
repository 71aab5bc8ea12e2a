/** `runs`, `log` and `state`: reading a recording. */
import { InputError } from '../events/errors.ts';
import { EVENT_KINDS, eventDomains, type Event, type EventKind } from '../events/schema.ts';
import type { DamagedRun, RunRow } from '../events/store.ts';
import { annotatedEvents, domainNames, eventLogJson, eventText, stateText, stateView } from '../replay/format.ts';
import { runFormatProblem } from '../replay/formats.ts';
import type { RunSummary } from '../replay/summary.ts';
import { violationCount } from '../replay/summary.ts';
import { Timeline } from '../replay/timeline.ts';
import { effectiveStatus, note, openForReading, out, parseCount, parseSeq, resolveRun } from './context.ts';

/** Violations by the summary the writer left; null when it left none (a live or cut-short run). */
function summaryViolations(run: RunRow): number | null {
  const { violations } = JSON.parse(run.summary) as Partial<RunSummary>;
  if (violations === undefined) return null;
  const counts = Object.values(violations ?? {}).map((v) => v?.count);
  return counts.every((c) => Number.isSafeInteger(c)) ? violationCount({ violations } as RunSummary) : null;
}

function runJson(run: RunRow) {
  return {
    id: run.id, name: run.name, parentRun: run.parentRun, forkSeq: run.forkSeq, status: effectiveStatus(run),
    events: run.eventCount, seed: run.seed, scenario: run.scenarioPath, config: JSON.parse(run.config),
    violations: summaryViolations(run),
    head: run.headHash.toString('hex'), schemaVersion: run.schemaVersion, formats: run.formats, simVersion: run.simVersion,
    // Why this chronovisor cannot read the run (another version of a format), or null.
    unreadable: runFormatProblem(run) ?? null,
  };
}

/**
 * `runs`: one line (or JSON object) per run. A run whose record is damaged is listed as such
 * (the others are still listed), and the command then exits 1 naming the damage.
 */
export function runsCommand(db: string, options: { json?: boolean }): number {
  const store = openForReading(db);
  try {
    const listed = store.runsOrDamage();
    const runs = listed.filter((r): r is RunRow => !('damage' in r)).map(runJson);
    const damaged = listed.filter((r): r is DamagedRun => 'damage' in r);
    if (options.json) {
      for (const r of listed) out(JSON.stringify('damage' in r ? { id: r.id, damaged: r.damage.message } : runJson(r)));
    } else {
      // The name column is as wide as the longest name (fuzz runs carry their seed and path).
      const width = Math.max(28, ...runs.map((r) => r.name.length));
      out(`${'id'.padStart(4)}  ${'name'.padEnd(width)} ${'from'.padEnd(12)} ${'status'.padEnd(10)} ${'events'.padStart(9)} ${'viol.'.padStart(5)}  head`);
      for (const entry of listed) {
        if ('damage' in entry) {
          out(`${String(entry.id).padStart(4)}  (its record is damaged)`);
          continue;
        }
        const r = runJson(entry);
        const from = r.parentRun === null ? '-' : `${r.parentRun}@${r.forkSeq}`;
        const unreadable = r.unreadable === null ? '' : `  unreadable: ${r.unreadable}`;
        out(`${String(r.id).padStart(4)}  ${r.name.padEnd(width)} ${from.padEnd(12)} ${r.status.padEnd(10)} ${String(r.events).padStart(9)} ${String(r.violations ?? '?').padStart(5)}  ${r.head.slice(0, 16)}${unreadable}`);
      }
    }
    for (const r of damaged) note(`chronovisor: ${r.damage.message}`);
    return damaged.length > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}

export interface LogOptions {
  run?: string;
  kind: string[];
  domain?: string;
  from?: string;
  to?: string;
  limit?: string;
  json?: boolean;
}

/** `--kind mem` selects every mem.* kind; an exact kind selects itself. */
function kindFilter(kinds: string[]): ((kind: EventKind) => boolean) | undefined {
  if (kinds.length === 0) return undefined;
  const selected = new Set<EventKind>();
  for (const k of kinds) {
    const matches = EVENT_KINDS.filter((kind) => kind === k || kind.startsWith(`${k}.`));
    if (matches.length === 0) throw new InputError('argument', `--kind ${k}: no such event kind; kinds: ${EVENT_KINDS.join(', ')}`);
    for (const m of matches) selected.add(m);
  }
  return (kind) => selected.has(kind);
}

export function logCommand(db: string, options: LogOptions): number {
  const store = openForReading(db);
  try {
    const run = resolveRun(store, options.run);
    const timeline = new Timeline(store, run);
    const from = options.from === undefined ? 0 : parseSeq(options.from, '--from');
    const to = options.to === undefined ? timeline.length : Math.min(timeline.length, parseSeq(options.to, '--to') + 1);
    const limit = options.limit === undefined ? Infinity : parseCount(options.limit, '--limit');
    const ofKind = kindFilter(options.kind);
    const domain = options.domain === undefined ? undefined : resolveDomain(options.domain, timeline);
    let shown = 0;
    for (const annotated of annotatedEvents(timeline, from, to)) {
      const { seq, event, instruction, names } = annotated;
      if (!matches(event, ofKind, domain)) continue;
      out(options.json
        ? JSON.stringify(eventLogJson(annotated))
        : `${String(seq).padStart(8)}  ${instruction ? `${instruction.padEnd(28)} ` : ''}${eventText(event, names)}`);
      if (++shown >= limit) break;
    }
    return 0;
  } finally {
    store.close();
  }
}

function matches(event: Event, ofKind: ((k: EventKind) => boolean) | undefined, domain: number | undefined): boolean {
  if (ofKind && !ofKind(event.kind)) return false;
  return domain === undefined || eventDomains(event).includes(domain);
}

/** A domain by id or by name (names from the whole run, so later domains count). */
function resolveDomain(text: string, timeline: Timeline): number {
  if (/^\d+$/.test(text)) return Number(text);
  const all = domainNames(timeline.stateAt(timeline.length));
  for (const [id, name] of all) if (name === text) return id;
  throw new InputError('argument', `--domain ${text}: no such domain; domains: ${[...all.values()].join(', ')}`);
}

export function stateCommand(db: string, options: { at?: string; run?: string; json?: boolean }): number {
  const store = openForReading(db);
  try {
    const run = resolveRun(store, options.run);
    const timeline = new Timeline(store, run);
    const at = options.at === undefined || options.at === 'end' ? timeline.length : parseSeq(options.at, '--at');
    if (at > timeline.length) throw new InputError('argument', `--at ${at}: run ${run.id} has ${timeline.length} events; give 0..${timeline.length} or end`);
    const state = timeline.stateAt(at);
    out(options.json ? JSON.stringify(stateView(state, at)) : stateText(state, at));
    return 0;
  } finally {
    store.close();
  }
}
