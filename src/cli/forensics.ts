/**
 * The forensic commands: `index`, `history`, `who-wrote`, `provenance`, `reach`, `explain`.
 * A query reads the recording; the one thing it may add is the forensic index, built on
 * first use (with a progress bar on a terminal) in one transaction, so a failed or
 * interrupted build leaves the recording as it was.
 */
import { accessSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { InputError } from '../events/errors.ts';
import { ForensicIndexStore } from '../events/forensic-index.ts';
import { RecordingStore, type RunRow } from '../events/store.ts';
import type { Seq } from '../events/schema.ts';
import { IndexBuild, indexStale, lineageOf } from '../replay/forensics/index-build.ts';
import { ForensicSession } from '../replay/forensics/session.ts';
import { history, whoWrote } from '../replay/forensics/history.ts';
import type { AccessRow } from '../replay/forensics/describe.ts';
import { provenance, provenanceRows } from '../replay/forensics/provenance.ts';
import { reach } from '../replay/forensics/reach.ts';
import { explain, explanationLines, type Explanation } from '../replay/forensics/explain.ts';
import { formatAddress, parseAddress, type Resolved } from '../replay/forensics/address.ts';
import { formatHostRange, formatRegister } from '../replay/forensics/address.ts';
import { note, openForReading, out, parseCount, parseSeq, resolveRun, quote, CLI } from './context.ts';
import { startProgress } from './progress.ts';

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    accessSync(dirname(path) || '.', constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function indexMissing(store: RecordingStore, run: RunRow): RunRow[] {
  const index = ForensicIndexStore.present(store.db) ? new ForensicIndexStore(store.db) : undefined;
  return lineageOf(store, run).filter((r) => indexStale(index, r));
}

/** Builds the index of `run`'s lineage on a writable connection of its own, with progress. */
export function buildIndex(path: string, run: RunRow, force = false): { events: number; bytes: number } {
  const store = RecordingStore.open(path);
  try {
    const build = new IndexBuild(store, store.run(run.id), force);
    const progress = startProgress(`indexing run ${run.id}`, build.total);
    try {
      // Never out of time: the caller waits; the slices only report progress.
      build.work(() => {
        progress.update(build.done);
        return false;
      });
      build.commit();
    } catch (error) {
      build.abort();
      throw error;
    } finally {
      progress.stop();
    }
    const index = new ForensicIndexStore(store.db);
    return { events: build.total, bytes: lineageOf(store, store.run(run.id)).reduce((sum, r) => sum + (index.status(r.id)?.bytes ?? 0), 0) };
  } finally {
    store.close();
  }
}

/**
 * Opens a run for querying: its index is built first if it is missing or behind (a read-only
 * file without one is an input error naming the fix).
 */
export function openSession(db: string, runRef: string | undefined): { store: RecordingStore; session: ForensicSession } {
  let store = openForReading(db);
  try {
    const run = resolveRun(store, runRef);
    if (indexMissing(store, run).length > 0) {
      if (!writable(db)) {
        throw new InputError('no-index', `${db}: run ${run.id} has no forensic index, and the file is read-only, so none can be added; run '${CLI} index ${quote(db)}' on a copy you may write`);
      }
      store.close();
      buildIndex(db, run);
      store = openForReading(db);
    }
    return { store, session: new ForensicSession(store, resolveRun(store, String(run.id))) };
  } catch (error) {
    store.close();
    throw error;
  }
}

export function indexCommand(db: string, options: { run?: string; force?: boolean }): number {
  const store = openForReading(db);
  let runs: RunRow[];
  try {
    runs = options.run === undefined ? store.runs().map((r) => resolveRun(store, String(r.id))) : [resolveRun(store, options.run)];
  } finally {
    store.close();
  }
  if (!writable(db)) throw new InputError('no-index', `${db}: the file (or its folder) is read-only; the index is stored in the recording, so run this on a copy you may write`);
  for (const run of runs) {
    const stale = options.force === true || indexMissing(openForReading(db), run).length > 0;
    if (!stale) {
      out(`run ${run.id} (${run.name}): index up to date`);
      continue;
    }
    const built = buildIndex(db, run, options.force === true);
    out(`run ${run.id} (${run.name}): ${built.events} events indexed, ${built.bytes} bytes of index rows`);
  }
  return 0;
}

// ---- arguments --------------------------------------------------------------------------

export interface RangeOptions {
  run?: string;
  from?: string;
  to?: string;
  at?: string;
  json?: boolean;
}

function range(session: ForensicSession, options: RangeOptions): { from: Seq; to: Seq } {
  const from = options.from === undefined ? 0 : session.position(parseSeq(options.from, '--from'), '--from');
  const to = options.to === undefined ? session.length : Math.min(session.length, parseSeq(options.to, '--to') + 1);
  if (to < from) throw new InputError('argument', `--from ${from} --to ${to - 1}: the range is empty; --to is the last seq shown`);
  return { from, to };
}

function atSeq(session: ForensicSession, at: string | undefined, fallback: Seq | undefined, command: string): Seq {
  if (at === undefined) {
    if (fallback !== undefined) return fallback;
    throw new InputError('argument', `${command}: --at SEQ is required (the position: the state after events 0..SEQ-1)`);
  }
  return session.position(parseSeq(at, '--at'), '--at');
}

/** The address as given and what it designated at `at`, for headers. */
function addressText(session: ForensicSession, text: string, resolved: Resolved): string {
  const given = formatAddress(parseAddress(text, 'ADDR'));
  const host = resolved.kind === 'memory' ? resolved.ranges.map(formatHostRange).join(' + ') : formatRegister(resolved.register, session.domainNames);
  return given === host ? given : `${given} = ${host}`;
}

// ---- history and who-wrote ------------------------------------------------------------------

function rowText(row: AccessRow): string {
  const value = row.before !== undefined || row.after !== undefined ? `${row.before ?? '?'} -> ${row.after ?? '?'}` : row.value ?? '';
  return `${String(row.seq).padStart(9)}  ${row.access.padEnd(5)} ${row.actor.padEnd(26)} ${row.what.padEnd(44)} ${row.bytes.padEnd(16)} ${value}`.trimEnd();
}

export function historyCommand(db: string, address: string, options: RangeOptions & { kind: string[]; limit?: string }): number {
  const { store, session } = openSession(db, options.run);
  try {
    const { from, to } = range(session, options);
    const at = atSeq(session, options.at, to, 'history');
    const resolved = session.resolve(address, at);
    const limit = options.limit === undefined ? Infinity : parseCount(options.limit, '--limit');
    const kinds = options.kind.flatMap((k) => k.split(','));
    const known = ['r', 'w', 'x', 'map', 'unmap', 'own', 'key', 'scrub', 'dma', 'copy'];
    const unknown = kinds.find((k) => !known.includes(k));
    if (unknown !== undefined) throw new InputError('argument', `--kind ${unknown}: no such access; accesses: ${known.join(', ')}`);
    if (!options.json) note(`history of ${addressText(session, address, resolved)} (as resolved at seq ${at}), run ${session.timeline.run.id}, seqs ${from}..${to - 1}`);
    let rows = 0;
    for (const row of history(session, resolved, { from, to, kinds, limit })) {
      out(options.json ? JSON.stringify(row) : rowText(row));
      rows++;
    }
    if (!options.json && rows === 0) note('no accesses in that range');
    return 0;
  } finally {
    store.close();
  }
}

export function whoWroteCommand(db: string, address: string, options: RangeOptions): number {
  const { store, session } = openSession(db, options.run);
  try {
    const at = atSeq(session, options.at, undefined, 'who-wrote');
    const resolved = session.resolve(address, at);
    const runs = whoWrote(session, resolved, at);
    if (options.json) {
      out(JSON.stringify({ address: formatAddress(parseAddress(address, 'ADDR')), at, run: session.timeline.run.id, runs }));
      return 0;
    }
    out(`who wrote ${addressText(session, address, resolved)} before seq ${at} (run ${session.timeline.run.id} ${session.timeline.run.name}):`);
    const width = Math.max(...runs.map((r) => r.bytes.length));
    for (const run of runs) {
      if (run.writer === undefined) {
        out(`  ${run.bytes.padEnd(width)}  never written since the recording began (uninitialised)`);
        continue;
      }
      const w = run.writer;
      const data = w.after ?? w.value;
      out(`  ${run.bytes.padEnd(width)}  seq ${w.seq}: ${w.actor}, ${w.what}${data === undefined ? '' : `: ${data}`}`);
      if (run.reencrypted) out(`  ${''.padEnd(width)}  (the line was re-encrypted by SMM at seq ${run.reencrypted.seq}, by ${run.reencrypted.by}'s write nearby; these bytes kept their plaintext)`);
    }
    return 0;
  } finally {
    store.close();
  }
}

// ---- provenance ------------------------------------------------------------------------------

export function provenanceCommand(db: string, address: string, options: RangeOptions & { budget?: string; depth?: string }): number {
  const { store, session } = openSession(db, options.run);
  try {
    const at = atSeq(session, options.at, undefined, 'provenance');
    const resolved = session.resolve(address, at);
    const budget = options.budget === undefined ? undefined : parseCount(options.budget, '--budget');
    const depth = options.depth === undefined ? undefined : parseCount(options.depth, '--depth');
    const result = provenance(session, resolved, at, { budget, depth });
    if (options.json) {
      out(JSON.stringify({ address: formatAddress(parseAddress(address, 'ADDR')), at, run: session.timeline.run.id, ...result }));
      return 0;
    }
    out(`provenance of ${addressText(session, address, resolved)} as it was at seq ${at} (run ${session.timeline.run.id} ${session.timeline.run.name}):`);
    for (const row of provenanceRows(result)) out(`  ${row.text}`);
    out('origins:');
    for (const id of result.origins) {
      const hop = result.hops[id];
      out(`  #${id} ${hop.to}${hop.bytes === undefined ? '' : ` = ${hop.bytes}`}: ${hop.origin}`);
    }
    if (result.cut) note(`the search stopped at ${result.hops.length} hops; give --budget N (or --depth N) to follow further`);
    return 0;
  } finally {
    store.close();
  }
}

// ---- reach -----------------------------------------------------------------------------------

export function reachCommand(db: string, address: string, options: RangeOptions & { limit?: string }): number {
  const { store, session } = openSession(db, options.run);
  try {
    const at = atSeq(session, options.at, undefined, 'reach');
    const resolved = session.resolve(address, at);
    const to = options.to === undefined ? session.length : Math.min(session.length, parseSeq(options.to, '--to') + 1);
    if (to < at) throw new InputError('argument', `--at ${at} --to ${to - 1}: the range is empty; --to is the last seq followed`);
    const limit = options.limit === undefined ? undefined : parseCount(options.limit, '--limit');
    const result = reach(session, resolved, at, { to, limit });
    if (options.json) {
      out(JSON.stringify({ address: formatAddress(parseAddress(address, 'ADDR')), at, run: session.timeline.run.id, ...result }));
      return 0;
    }
    out(`reach of ${addressText(session, address, resolved)} (${result.owner}'s) from seq ${at} to ${to - 1} (run ${session.timeline.run.id} ${session.timeline.run.name}):`);
    for (const e of result.events) {
      const seen = e.kind !== 'read' ? '' : e.plaintext ? '  PLAINTEXT' : '  (ciphertext)';
      out(`${String(e.seq).padStart(9)}  ${e.kind.padEnd(5)} ${e.actor.padEnd(26)} ${e.what}: ${e.bytes}${seen}`);
    }
    if (result.omitted > 0) note(`${result.omitted} more events not listed; give --limit N to list more`);
    if (result.exposed.length === 0) out(`no domain other than ${result.owner}, and not dom0, saw these bytes in plaintext`);
    for (const x of result.exposed) out(`EXPOSED: ${x.reader} saw ${result.owner}'s bytes in plaintext first at seq ${x.seq} (${x.what})`);
    out(`still there at seq ${to - 1}: ${result.remaining.length === 0 ? 'nowhere (overwritten or scrubbed)' : result.remaining.join(' + ')}`);
    return 0;
  } finally {
    store.close();
  }
}

// ---- explain ---------------------------------------------------------------------------------

export function explainCommand(db: string, seqText: string, options: { run?: string; json?: boolean }): number {
  const { store, session } = openSession(db, options.run);
  try {
    const seq = parseSeq(seqText, 'SEQ');
    if (seq >= session.length) throw new InputError('argument', `SEQ ${seq}: run ${session.timeline.run.id} has ${session.length} events; give 0..${session.length - 1}`);
    const x = explain(session, seq);
    if (options.json) out(JSON.stringify({ run: session.timeline.run.id, ...x }));
    else {
      out(`explain seq ${seq} of run ${session.timeline.run.id} (${session.timeline.run.name}):`);
      for (const line of explanationLines(x)) out(line);
    }
    return 0;
  } finally {
    store.close();
  }
}

/** Why a run broke an invariant: the explanation of its first violation (fuzz reports it for each counterexample it records). */
export interface RunExplanation {
  text: string[];
  json: { run: number } & Explanation;
}

export function explainFirstViolation(db: string, runId: number): RunExplanation | undefined {
  const { store, session } = openSession(db, String(runId));
  try {
    for (const [seq, event] of session.timeline.iterate()) {
      if (event.kind !== 'violation') continue;
      const x = explain(session, seq);
      return { text: explanationLines(x), json: { run: runId, ...x } };
    }
    return undefined;
  } finally {
    store.close();
  }
}
