/** `verify`, `fork` and `diff`: proving and comparing runs. */
import type { RunRow } from '../events/store.ts';
import { diffRuns } from '../replay/diff.ts';
import { forkRun } from '../replay/fork.ts';
import { domainNames, eventJson, eventText } from '../replay/format.ts';
import { Timeline } from '../replay/timeline.ts';
import { violationCount } from '../replay/summary.ts';
import {
  SIM_VERSION, note, openForReading, openForWriting, out, parseCount, parseSeq, parseSets, quote, resolveRun, CLI,
} from './context.ts';
import { verifyRunParallel } from './parallel-verify.ts';
import { startProgress } from './progress.ts';

export async function verifyCommand(db: string, options: { run?: string; json?: boolean; workers?: string }): Promise<number> {
  const workers = options.workers === undefined ? undefined : parseCount(options.workers, '--workers');
  const store = openForReading(db);
  try {
    const runs: RunRow[] = options.run === undefined ? store.runs().map((r) => resolveRun(store, String(r.id))) : [resolveRun(store, options.run)];
    let failed = 0;
    for (const run of runs) {
      const progress = startProgress(`verifying run ${run.id}`, run.eventCount);
      const report = await verifyRunParallel(store, run, workers, (done) => progress.update(done));
      progress.stop();
      if (!report.ok) failed++;
      if (options.json) {
        out(JSON.stringify({ ...report, mismatch: report.mismatch && {
          ...report.mismatch,
          expected: report.mismatch.expected && eventJson(report.mismatch.seq, report.mismatch.expected),
          actual: report.mismatch.actual && eventJson(report.mismatch.seq, report.mismatch.actual),
        } }));
        continue;
      }
      const what = `run ${run.id} (${run.name}, ${run.status}): ${report.events} events, ${report.chunks} chunks, ${report.checkpoints} checkpoints`;
      if (report.ok) {
        out(`ok    ${what}; hash chain intact, ${report.replayedEvents} events re-executed identically`);
        continue;
      }
      const m = report.mismatch!;
      out(`FAIL  ${what}`);
      out(`      ${m.check}: ${m.message}`);
      if (m.expected) out(`      recorded: ${eventText(m.expected)}`);
      if (m.actual) out(`      replayed: ${eventText(m.actual)}`);
      out(`      seed=${run.seed} run=${run.id} seq=${m.seq}; look: ${CLI} log ${quote(db)} --run ${run.id} --from ${Math.max(0, m.seq - 5)} --to ${m.seq + 5}`);
    }
    return failed > 0 ? 1 : 0;
  } finally {
    store.close();
  }
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
    const progress = startProgress('forking');
    const result = forkRun(store, {
      parent, at, modifications, name: options.name, simVersion: SIM_VERSION, writerPid: process.pid,
    }, { maxEvents, onProgress: (seq, tick) => progress.update(seq, { tick }) });
    progress.stop();
    if (result.forkSeq !== at) note(`--at ${at} is inside a step; forked at the step boundary ${result.forkSeq}`);
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

export function diffCommand(db: string, runA: string, runB: string, options: { json?: boolean }): number {
  const store = openForReading(db);
  try {
    const a = resolveRun(store, runA);
    const b = resolveRun(store, runB);
    const diff = diffRuns(store, a, b);
    if (options.json) {
      out(JSON.stringify({
        ...diff,
        aEvents: diff.aEvents.map(([seq, e]) => eventJson(seq, e)),
        bEvents: diff.bEvents.map(([seq, e]) => eventJson(seq, e)),
      }));
      return 0;
    }
    out(`A: run ${a.id} (${a.name}), ${diff.a.events} events`);
    out(`B: run ${b.id} (${b.name}), ${diff.b.events} events`);
    if (diff.divergedAt === undefined) {
      out('identical: same events, same states.');
      return 0;
    }
    out(`first divergence at seq ${diff.divergedAt}${diff.divergedAt > 0 ? ` (the first ${diff.divergedAt} events are the same)` : ''}`);
    const width = 64;
    const names = new Map([...domainNames(new Timeline(store, a).stateAt(a.eventCount)), ...domainNames(new Timeline(store, b).stateAt(b.eventCount))]);
    const side = (events: typeof diff.aEvents, seq: number): string => {
      const found = events.find(([s]) => s === seq);
      return found ? eventText(found[1], names).slice(0, width) : '(end of run)';
    };
    const seqs = [...new Set([...diff.aEvents, ...diff.bEvents].map(([s]) => s))].sort((x, y) => x - y);
    for (const seq of seqs) {
      out(`${String(seq).padStart(8)}  A ${side(diff.aEvents, seq)}`);
      out(`${''.padStart(8)}  B ${side(diff.bEvents, seq)}`);
    }
    out(`state at the end (${diff.state.length} differences):`);
    const byArea = new Map<string, typeof diff.state>();
    for (const d of diff.state) byArea.set(d.area, [...(byArea.get(d.area) ?? []), d]);
    for (const [area, list] of byArea) {
      out(`  ${area}: ${list.length}`);
      for (const d of list.slice(0, 12)) out(`    ${d.what}: A ${d.a} | B ${d.b}`);
      if (list.length > 12) out(`    ... ${list.length - 12} more (--json for all)`);
    }
    return 0;
  } finally {
    store.close();
  }
}
