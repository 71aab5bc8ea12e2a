/**
 * npm run mutants [-- --time 60s] [--modes random,guided] [--only NAME,...] [--seed N] [--json]
 *
 * Runs the mutation suite (src/fuzz/mutants.ts): each mutation applied alone to a temporary
 * copy of the tree (never the checkout), then `chronovisor fuzz` of that copy for a fixed
 * time, once per mode, one worker. Prints each mutant's time to find and finding, then the
 * kill rate and median time to find per mode. A mutant that trips one of the simulator's own
 * assertions in a case is a counterexample like any other (`simulator-assertion: ...`); one
 * that trips it outside a case (fuzz exits 3: an internal error) is found too, as a crash, in
 * the time its run took (start-up included). Exit 0 when it ran (whatever the kill rate),
 * 2 on a bad argument or a mutation that no longer applies, 1 when a fuzz run failed.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MUTATIONS, applyMutation, summarize, type Mutation, type MutantOutcome } from '../src/fuzz/mutants.ts';

const ROOT = resolve(import.meta.dirname, '..');
const MODES = ['random', 'guided'] as const;
type Mode = (typeof MODES)[number];

function usage(message: string): never {
  process.stderr.write(`mutants: ${message}\nusage: npm run mutants -- [--time 60s] [--modes random,guided] [--only NAME,...] [--seed N] [--json]\n`);
  process.exit(2);
}

function options(): { seconds: number; modes: Mode[]; mutations: Mutation[]; seed: number; json: boolean } {
  let values;
  try {
    values = parseArgs({ options: { time: { type: 'string', default: '60s' }, modes: { type: 'string', default: MODES.join(',') }, only: { type: 'string' }, seed: { type: 'string', default: '1' }, json: { type: 'boolean', default: false } } }).values;
  } catch (e) {
    usage((e as Error).message);
  }
  const time = /^(\d+)(s|m)?$/.exec(values.time!);
  if (time === null || Number(time[1]) === 0) usage(`--time ${values.time}: a duration like 30s or 2m`);
  const modes = values.modes!.split(',');
  for (const mode of modes) if (!(MODES as readonly string[]).includes(mode)) usage(`--modes: ${mode} is not one of ${MODES.join(', ')}`);
  const names = values.only?.split(',');
  for (const name of names ?? []) if (!MUTATIONS.some((m) => m.name === name)) usage(`--only: no mutation named ${name} (see src/fuzz/mutants.ts)`);
  if (!/^\d+$/.test(values.seed!)) usage(`--seed ${values.seed}: a whole number`);
  return {
    seconds: Number(time[1]) * (time[2] === 'm' ? 60 : 1),
    modes: modes as Mode[],
    mutations: names ? MUTATIONS.filter((m) => names.includes(m.name)) : [...MUTATIONS],
    seed: Number(values.seed),
    json: values.json!,
  };
}

/** A copy of what `chronovisor` runs from; node_modules is shared (a link), never changed. */
function copyTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-mutants-'));
  for (const entry of ['src', 'bin', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

/** Fuzzes the tree at `dir` (a mutant applied) for `seconds` in `mode`. */
function fuzz(dir: string, name: string, mode: Mode, seconds: number, seed: number): MutantOutcome {
  const db = join(dir, `${mode}.db`);
  rmSync(db, { force: true });
  const args = [join(dir, 'bin/chronovisor'), 'fuzz', '--time', `${seconds}s`, '--workers', '1', '--seed', String(seed), '--json', '--out', db, ...(mode === 'guided' ? ['--guided'] : [])];
  const started = performance.now();
  const run = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', maxBuffer: 64 << 20 });
  // The simulator's own assertion stopped the campaign (Xen's BUG_ON): found, in the time the run took.
  const crash = run.status === 3 ? /internal error: (.*)/.exec(run.stderr) : null;
  if (crash !== null) return { name, mode, found: true, seconds: (performance.now() - started) / 1000, cases: null, finding: `crash: ${crash[1]}` };
  if (run.status !== 0 && run.status !== 1) throw new Error(`mutant ${name} (${mode}): fuzz exited ${run.status}: ${run.stderr.slice(-2000)}`);
  const report = JSON.parse(run.stdout) as { runs: number; counterexamples: { finding: string; msToFind: number | null; runsToFind: number }[] };
  const first = report.counterexamples[0];
  if (run.status === 1 && first === undefined) throw new Error(`mutant ${name} (${mode}): fuzz exited 1 with no counterexample: ${run.stderr.slice(-2000)}`);
  return { name, mode, found: first !== undefined, seconds: first ? (first.msToFind ?? seconds * 1000) / 1000 : null, cases: first?.runsToFind ?? report.runs, finding: first?.finding ?? null };
}

function line(outcomes: MutantOutcome[], m: Mutation, modes: Mode[]): string {
  const cells = modes.map((mode) => {
    const o = outcomes.find((x) => x.name === m.name && x.mode === mode)!;
    return (o.found ? `${o.seconds!.toFixed(2)} s/${o.cases ?? '?'}` : `- /${o.cases}`).padStart(14);
  });
  const finding = outcomes.find((x) => x.name === m.name && x.found)?.finding ?? '';
  return `${m.name.padEnd(36)} ${cells.join(' ')}  ${finding.slice(0, 90)}`;
}

function main(): number {
  const o = options();
  const originals = new Map(o.mutations.map((m) => [m.file, readFileSync(join(ROOT, m.file), 'utf8')]));
  // Every mutation must apply before any time is spent.
  try {
    for (const m of o.mutations) applyMutation(originals.get(m.file)!, m);
  } catch (e) {
    process.stderr.write(`mutants: ${(e as Error).message}\n`);
    return 2;
  }
  const dir = copyTree();
  const outcomes: MutantOutcome[] = [];
  try {
    if (!o.json) process.stdout.write(`${o.mutations.length} mutants, ${o.seconds} s each per mode (${o.modes.join(', ')}), seed ${o.seed}, 1 worker; tree copied to ${dir}\n${'mutant'.padEnd(36)} ${o.modes.map((m) => `${m} s/cases`.padStart(14)).join(' ')}  first finding\n`);
    for (const m of o.mutations) {
      const file = join(dir, m.file);
      writeFileSync(file, applyMutation(originals.get(m.file)!, m));
      try {
        for (const mode of o.modes) outcomes.push(fuzz(dir, m.name, mode, o.seconds, o.seed));
      } finally {
        writeFileSync(file, originals.get(m.file)!);
      }
      if (!o.json) process.stdout.write(`${line(outcomes, m, o.modes)}\n`);
    }
  } catch (e) {
    process.stderr.write(`mutants: ${(e as Error).message}\n`);
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = summarize(outcomes);
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ seconds: o.seconds, seed: o.seed, outcomes, summary })}\n`);
    return 0;
  }
  for (const s of summary) {
    const both = s.medianWhereBoth === null ? '' : `; ${s.medianWhereBoth.toFixed(2)} s where every mode killed it`;
    process.stdout.write(`${s.mode}: killed ${s.killed} of ${s.total} (${Math.round((100 * s.killed) / s.total)}%), median time to find ${s.median === null ? '-' : `${s.median.toFixed(2)} s`}${both}\n`);
  }
  return 0;
}

process.exitCode = main();
