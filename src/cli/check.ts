/** `verify`, `fork` and `diff`: proving and comparing runs. */
import { InputError } from '../events/errors.ts';
import { RecordingDamage, type DamagedRun, type RecordingStore, type RunRow } from '../events/store.ts';
import type { Event } from '../events/schema.ts';
import { diffRuns, type RegionDiff, type StateDifference } from '../replay/diff.ts';
import { forkRun } from '../replay/fork.ts';
import { domainNames, eventJson, eventText } from '../replay/format.ts';
import { Timeline } from '../replay/timeline.ts';
import { violationCount } from '../replay/summary.ts';
import type { VerifyReport } from '../replay/verify.ts';
import {
  SIM_VERSION, note, openForReading, openForWriting, out, parseCount, parseSeq, parseSets, quote, reportStorageFull, resolveRun, CLI,
} from './context.ts';
import { verifyRunParallel } from './parallel-verify.ts';
import { keepHeapNearLive } from './heap.ts';
import { startProgress } from './progress.ts';

export async function verifyCommand(db: string, options: { run?: string; json?: boolean; workers?: string }): Promise<number> {
  const workers = options.workers === undefined ? undefined : parseCount(options.workers, '--workers');
  keepHeapNearLive();
  const store = openForReading(db);
  try {
    const runs = options.run === undefined ? store.runsOrDamage() : [requestedRun(store, options.run)];
    let failed = 0;
    for (const listed of runs) {
      const run = 'damage' in listed ? undefined : resolveRun(store, String(listed.id));
      const report = run === undefined ? damagedReport(listed.id, (listed as DamagedRun).damage) : await verifyOne(store, run, workers);
      if (!report.ok) failed++;
      if (options.json) {
        out(JSON.stringify({ ...report, mismatch: report.mismatch && {
          ...report.mismatch,
          expected: report.mismatch.expected && eventJson(report.mismatch.seq, report.mismatch.expected),
          actual: report.mismatch.actual && eventJson(report.mismatch.seq, report.mismatch.actual),
        } }));
        continue;
      }
      printReport(db, run, report);
    }
    return failed > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}

/** The run --run names; a damaged record is reported as that run's failure. */
function requestedRun(store: RecordingStore, ref: string): RunRow | DamagedRun {
  try {
    return resolveRun(store, ref);
  } catch (error) {
    const id = /^\d+$/.test(ref) ? Number(ref) : undefined;
    if (error instanceof RecordingDamage && id !== undefined) return { id, damage: error };
    throw error;
  }
}

/** Verifies one run; damage met on the way (a record, a lineage) is its failure, not bad input. */
async function verifyOne(store: RecordingStore, run: RunRow, workers: number | undefined): Promise<VerifyReport> {
  const progress = startProgress(`verifying run ${run.id}`, run.eventCount);
  try {
    return await verifyRunParallel(store, run, workers, (done) => progress.update(done));
  } catch (error) {
    if (error instanceof RecordingDamage) return damagedReport(run.id, error);
    throw error;
  } finally {
    progress.stop();
  }
}

function damagedReport(run: number, damage: RecordingDamage): VerifyReport {
  return { run, events: 0, chunks: 0, checkpoints: 0, replayedEvents: 0, live: false, ok: false, mismatch: { check: 'run', seq: damage.seq ?? 0, message: damage.what } };
}

function printReport(db: string, run: RunRow | undefined, report: VerifyReport): void {
  const what = run === undefined
    ? `run ${report.run} (its record is damaged)`
    : `run ${run.id} (${run.name}, ${run.status}): ${report.events} events, ${report.chunks} chunks, ${report.checkpoints} checkpoints`;
  const live = report.live ? `; live: verified up to its last committed chunk (seq ${report.events}), the run is still being recorded` : '';
  if (report.ok) {
    out(`ok    ${what}; hash chain intact, ${report.replayedEvents} events re-executed identically${live}`);
    return;
  }
  const m = report.mismatch!;
  out(`FAIL  ${what}${live}`);
  out(`      ${m.check}: ${m.message}`);
  if (m.expected) out(`      recorded: ${eventText(m.expected)}`);
  if (m.actual) out(`      replayed: ${eventText(m.actual)}`);
  out(`      seed=${run?.seed ?? '?'} run=${report.run} seq=${m.seq}; look: ${CLI} log ${quote(db)} --run ${report.run} --from ${Math.max(0, m.seq - 5)} --to ${m.seq + 5}`);
}

export interface ForkOptions {
  run: string;
  at: string;
  set: string[];
  name?: string;
  events?: string;
}

export function forkCommand(db: string, options: ForkOptions): number {
  const at = parseSeq(options.at, '--at');
  const modifications = parseSets(options.set);
  const maxEvents = options.events === undefined ? undefined : parseCount(options.events, '--events');
  const store = openForWriting(db);
  try {
    const parent = resolveRun(store, options.run);
    const from = modifications.length > 0 ? at : unchangedForkPoint(parent, at);
    const progress = startProgress('forking');
    const result = forkRun(store, {
      parent, at: from, modifications, name: options.name, simVersion: SIM_VERSION, writerPid: process.pid,
    }, { maxEvents, onProgress: (seq, tick) => progress.update(seq, { tick }) });
    progress.stop();
    if (result.storageFull !== undefined) return reportStorageFull(db, store.run(result.run), result.status, result.storageFull);
    if (result.forkSeq !== from) note(`--at ${from} is inside a step; forked at the step boundary ${result.forkSeq}`);
    const s = result.summary;
    out(`run ${result.run}: forked from run ${parent.id} at seq ${result.forkSeq} with ${modifications.map(([k, v]) => `${k}=${v}`).join(', ') || 'no change'}`);
    out(`  ${s.events} events (${s.events - result.forkSeq} new), ${s.ticks} ticks, ${result.status}, ${violationCount(s)} violations`);
    for (const [invariant, v] of Object.entries(s.violations)) out(`  violation ${invariant}: ${v.count}x, first at seq ${v.firstSeq}`);
    out(`  compare: ${CLI} diff ${quote(db)} ${parent.id} ${result.run}`);
    return 0;
  } finally {
    store.close();
  }
}

/**
 * A fork with no --set: the machine is deterministic, so from any seq it would record exactly
 * the parent's events. A run that ran to its end is refused (there is nothing new to see); a
 * run cut short (stopped, or its writer gone) is continued from its end instead of --at,
 * sharing every event it has, where forking at --at would store them all again.
 */
function unchangedForkPoint(parent: RunRow, at: number): number {
  const hint = `give a change with --set KEY=VALUE (for example --set profile=${JSON.parse(parent.config).profile === 'vanilla' ? 'secure' : 'vanilla'})`;
  if (parent.status === 'complete') {
    throw new InputError('argument', `fork without --set: run ${parent.id} ran to its end, and with no change the fork would record exactly its events again; ${hint}`);
  }
  if (parent.status === 'recording') {
    throw new InputError('argument', `fork without --set: run ${parent.id} is still being recorded, and with no change the fork would record exactly its events; wait for it, or ${hint}`);
  }
  if (at < parent.eventCount) note(`no --set: the fork continues run ${parent.id} from its end (seq ${parent.eventCount}), sharing all its events, instead of recording them again from --at ${at}`);
  return parent.eventCount;
}

export function diffCommand(db: string, runA: string, runB: string, options: { json?: boolean; regions?: string }): number {
  const regions = options.regions === undefined ? 10 : parseCount(options.regions, '--regions');
  keepHeapNearLive();
  const store = openForReading(db);
  try {
    const a = resolveRun(store, runA);
    const b = resolveRun(store, runB);
    const diff = diffRuns(store, a, b, 8, regions);
    const pair = (e: [number, Event] | undefined) => e && eventJson(e[0], e[1]);
    if (options.json) {
      out(JSON.stringify({
        ...diff,
        divergedAt: diff.divergedAt ?? null,
        aEvents: diff.aEvents.map(([seq, e]) => eventJson(seq, e)),
        bEvents: diff.bEvents.map(([seq, e]) => eventJson(seq, e)),
        regions: diff.regions.map((r) => ({ ...r, first: r.first.map((x) => ({ ...x, a: pair(x.a) ?? null, b: pair(x.b) ?? null })) })),
      }));
      return 0;
    }
    out(`A: run ${a.id} (${a.name}), ${diff.a.events} events`);
    out(`B: run ${b.id} (${b.name}), ${diff.b.events} events`);
    if (diff.divergedAt === undefined) {
      out('identical: same events, same states.');
      return 0;
    }
    const names = new Map([...domainNames(new Timeline(store, a).stateAt(a.eventCount)), ...domainNames(new Timeline(store, b).stateAt(b.eventCount))]);
    out(diff.divergedAt > 0 ? `the first ${diff.divergedAt} events are the same; they differ from seq ${diff.divergedAt} on` : 'the events differ from seq 0 (the boot event names the profile)');
    out(`aligned by tick and actor from seq ${diff.alignedFrom} (configuration events, and how a profile stores memory, left out): ${diff.alike} steps alike, ${diff.regionCount} ${diff.regionCount === 1 ? 'region differs' : 'regions differ'}`);
    diff.regions.forEach((r, i) => printRegion(r, i, diff.regionCount, names));
    if (diff.regionCount > diff.regions.length) out(`... ${diff.regionCount - diff.regions.length} more regions (--regions N shows more)`);
    printDifferences(`state at the end (${diff.state.length} differences):`, diff.state, '  ');
    return 0;
  } finally {
    store.close();
  }
}

const EVENT_WIDTH = 110;

function printRegion(r: RegionDiff, i: number, count: number, names: Map<number, string>): void {
  const ticks = r.ticks[0] === r.ticks[1] ? `tick ${r.ticks[0]}` : `ticks ${r.ticks[0]}..${r.ticks[1]}`;
  out(`region ${i + 1} of ${count}: ${ticks}, A seq ${r.a[0]}..${r.a[1]}, B seq ${r.b[0]}..${r.b[1]}, ${r.actors.join(' ')} (${r.differing} ${r.differing === 1 ? 'step differs' : 'steps differ'})`);
  for (const x of r.first) {
    const side = (label: string, e: [number, Event] | undefined): string => `    ${label} ${e ? `${String(e[0]).padStart(8)}  ${eventText(e[1], names)}`.slice(0, EVENT_WIDTH) : '(nothing)'}`;
    out(`  ${x.actor} at tick ${x.tick}:`);
    out(side('A', x.a));
    out(side('B', x.b));
  }
  printDifferences(r.state.length === 0 ? '  state it changed: none' : '  state it changed:', r.state, '    ');
}

function printDifferences(title: string, differences: StateDifference[], indent: string): void {
  out(title);
  const byArea = new Map<string, StateDifference[]>();
  for (const d of differences) byArea.set(d.area, [...(byArea.get(d.area) ?? []), d]);
  for (const [area, list] of byArea) {
    out(`${indent}${area}: ${list.length}`);
    for (const d of list.slice(0, 12)) out(`${indent}  ${d.what}: A ${d.a} | B ${d.b}`);
    if (list.length > 12) out(`${indent}  ... ${list.length - 12} more (--json for all)`);
  }
}
