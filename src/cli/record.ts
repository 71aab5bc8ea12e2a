/** `run` and `demo`: recording scenarios. */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../events/errors.ts';
import { PROFILES, type Profile } from '../events/schema.ts';
import type { RecordingStore } from '../events/store.ts';
import type { MachineConfig } from '../core/scenario.ts';
import { recordScenario, type DriveResult } from '../replay/recorder.ts';
import { violationCount } from '../replay/summary.ts';
import { SIM_VERSION, defaultRecordingPath, note, openForReading, openForWriting, out, parseCount, quote, readScenario, CLI } from './context.ts';
import { startProgress } from './progress.ts';

export interface RunOptions {
  out?: string;
  name?: string;
  profile?: string;
  failOnViolation?: boolean;
  maxEvents?: string;
}

function parseProfile(text: string | undefined): Profile | undefined {
  if (text === undefined) return undefined;
  if (!PROFILES.includes(text as Profile)) throw new InputError('argument', `--profile ${text}: expected ${PROFILES.join(' or ')}`);
  return text as Profile;
}

interface Scenario {
  path: string;
  text: string;
  config: MachineConfig;
  files: Record<string, string>;
}

function record(store: RecordingStore, scenario: Scenario, name: string, profile: Profile | undefined, options: RunOptions): DriveResult {
  const progress = startProgress(`recording ${name}`);
  const { path: scenarioPath, text, config, files } = scenario;
  try {
    return recordScenario(store, profile ? { ...config, profile } : config, {
      name, scenarioText: text, scenarioPath, config: JSON.stringify({ ...(profile ? { profile } : {}), files }),
      simVersion: SIM_VERSION, writerPid: process.pid,
    }, {
      failOnViolation: options.failOnViolation,
      maxEvents: options.maxEvents === undefined ? undefined : parseCount(options.maxEvents, '--max-events'),
      onProgress: (seq, tick) => progress.update(seq, { tick }),
    });
  } finally {
    progress.stop();
  }
}

function printResult(db: string, result: DriveResult, profile: Profile): void {
  const s = result.summary;
  out(`run ${result.run} (${profile}): ${s.events} events, ${s.ticks} ticks, ${result.status}, ${violationCount(s)} violations`);
  const count = (kind: string): number => s.byKind[kind] ?? 0;
  if (count('cpu.step') > 0) {
    out(`  x86 guests: ${count('cpu.step')} instructions, ${count('vm.exit')} VM exits, ${count('exception')} exceptions, ${count('tlb.fill')} TLB fills`);
  }
  for (const [invariant, v] of Object.entries(s.violations)) {
    out(`  violation ${invariant}: ${v.count}x, first at seq ${v.firstSeq}: ${v.detail}`);
  }
  out(`  head ${result.headHash.toString('hex').slice(0, 16)}`);
  if (result.firstViolationSeq !== undefined) {
    out(`  look: ${CLI} log ${quote(db)} --run ${result.run} --kind violation`);
    out(`        ${CLI} state ${quote(db)} --run ${result.run} --at ${result.firstViolationSeq}`);
  }
}

/** `chronovisor run SCENARIO`: records one run; exit 1 when --fail-on-violation hits. */
export function runCommand(scenarioPath: string, options: RunOptions): number {
  const profile = parseProfile(options.profile);
  const scenario = { path: scenarioPath, ...readScenario(scenarioPath) };
  const { config } = scenario;
  const db = options.out ?? defaultRecordingPath(scenarioPath);
  const store = openForWriting(db);
  try {
    const effective = profile ?? config.profile;
    const name = options.name ?? `${scenarioPath.replace(/^.*\//, '').replace(/\.ya?ml$/, '')}-${effective}`;
    const result = record(store, scenario, name, profile, options);
    note(`recorded into ${db}`);
    printResult(db, result, effective);
    return options.failOnViolation && result.firstViolationSeq !== undefined ? 1 : 0;
  } finally {
    store.close();
  }
}

const DEMO_SCENARIO = fileURLToPath(new URL('../../recordings/two-tenants.yaml', import.meta.url));

/**
 * `chronovisor demo`: records the bundled scenario in both profiles into a fresh recording
 * (written aside, then moved into place, so a failure leaves the old one intact) and says
 * what happened and where to look.
 */
export async function demoCommand(options: { out?: string }): Promise<number> {
  const scenarioPath = relative(process.cwd(), DEMO_SCENARIO) || DEMO_SCENARIO;
  const db = options.out ?? defaultRecordingPath(scenarioPath);
  const scenario = { path: scenarioPath, ...readScenario(scenarioPath) };
  // Only a chronovisor recording may be replaced: anything else at --out is refused, untouched.
  if (existsSync(db)) openForReading(db).close();
  const scratch = `${db}.partial-${process.pid}`;
  const store = openForWriting(scratch);
  const results: [Profile, DriveResult][] = [];
  try {
    for (const profile of ['secure', 'vanilla'] as const) {
      results.push([profile, record(store, scenario, `two-tenants-${profile}`, profile, {})]);
    }
  } catch (error) {
    store.close();
    rmSync(scratch, { force: true });
    throw error;
  }
  store.close();
  for (const suffix of ['', '-wal', '-shm']) if (existsSync(db + suffix)) rmSync(db + suffix);
  renameSync(scratch, db);
  out(`chronovisor demo: ${scenarioPath} recorded in both profiles into ${db}`);
  out('alice plants a secret, bob gives pages back, carol is created and scans her memory, dom0 reads alice\'s frame.\n');
  for (const [profile, result] of results) printResult(db, result, profile);
  const [secure, vanilla] = results.map(([, r]) => r);
  out('');
  out(violationCount(vanilla.summary) > 0 && violationCount(secure.summary) === 0
    ? 'vanilla Xen leaks (dom0 reads plaintext, carol finds bob\'s secret); SMM holds: no violation in the secure run.'
    : 'unexpected: the demo should leak in vanilla and hold in secure; run `npx chronovisor verify` on it.');
  out('\nnext:');
  out(`  ${CLI} runs ${quote(db)}`);
  out(`  ${CLI} diff ${quote(db)} ${secure.run} ${vanilla.run}`);
  if (vanilla.firstViolationSeq !== undefined) {
    out(`  ${CLI} state ${quote(db)} --run ${vanilla.run} --at ${vanilla.firstViolationSeq}`);
  }
  out(`  ${CLI} fork ${quote(db)} --run ${vanilla.run} --at 0 --set profile=secure --name what-if-smm`);
  out(`  ${CLI} verify ${quote(db)}`);
  // With a terminal to show it in, the demo goes on in the TUI, on the run that leaks.
  if (process.stdout.isTTY && process.stdin.isTTY) return (await import('./tui.ts')).tuiCommand(db, { run: String(vanilla.run) });
  return 0;
}
