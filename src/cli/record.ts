/** `run` and `demo`: recording scenarios. */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { basename, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../events/errors.ts';
import { PROFILES, type Profile } from '../events/schema.ts';
import type { RecordingStore } from '../events/store.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { recordScenario, type DriveResult } from '../replay/recorder.ts';
import { violationCount } from '../replay/summary.ts';
import {
  SIM_VERSION, checkRecordingTarget, defaultRecordingPath, note, openForWriting, out, parseCount, quote, readScenario, reportStorageFull, CLI,
} from './context.ts';
import { startProgress } from './progress.ts';

export interface RunOptions {
  out?: string;
  name?: string;
  profile?: string;
  failOnViolation?: boolean;
  maxEvents?: string;
  guestPath?: string[];
  maxSourceKib?: string;
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
  const guestOptions = {
    guestPaths: options.guestPath,
    sourceKibMax: options.maxSourceKib === undefined ? undefined : parseCount(options.maxSourceKib, '--max-source-kib'),
  };
  const scenario = { path: scenarioPath, ...readScenario(scenarioPath, guestOptions) };
  const { config } = scenario;
  const db = options.out ?? defaultRecordingPath(scenarioPath);
  const store = openForWriting(db);
  try {
    const effective = profile ?? config.profile;
    const name = options.name ?? `${scenarioPath.replace(/^.*\//, '').replace(/\.ya?ml$/, '')}-${effective}`;
    const result = record(store, scenario, name, profile, options);
    if (result.storageFull !== undefined) return reportStorageFull(db, store.run(result.run), result.status, result.storageFull);
    note(`recorded into ${db}`);
    printResult(db, result, effective);
    return options.failOnViolation && result.firstViolationSeq !== undefined ? 1 : 0;
  } finally {
    store.close();
  }
}

const DEMO_SCENARIOS = ['two-tenants', 'network'].map((name) => fileURLToPath(new URL(`../../recordings/${name}.yaml`, import.meta.url)));
const DEMO_DB = fileURLToPath(new URL('../../recordings/demo.db', import.meta.url));

type DemoRun = { scenario: string; profile: Profile; result: DriveResult };

/**
 * `chronovisor demo`: records the bundled scenarios (memory: two-tenants; I/O: network) in
 * both profiles into a fresh recording (written aside, then moved into place, so a failure
 * leaves the old one intact) and says what happened and where to look.
 */
export async function demoCommand(options: { out?: string }): Promise<number> {
  const db = options.out ?? (relative(process.cwd(), DEMO_DB) || DEMO_DB);
  // Only a chronovisor recording may be replaced: anything else at --out is refused, untouched.
  // One of another format is replaced like any other: the demo records the file anew, which
  // is what the format message asks for (an upgraded checkout's npm start must not fail on it).
  try {
    checkRecordingTarget(db);
  } catch (error) {
    if (!(error instanceof InputError && (error.code === 'schema-older' || error.code === 'schema-newer'))) throw error;
  }
  const scratch = `${db}.partial-${process.pid}`;
  const store = openForWriting(scratch);
  const runs: DemoRun[] = [];
  try {
    for (const path of DEMO_SCENARIOS) {
      const scenarioPath = relative(process.cwd(), path) || path;
      const scenario = { path: scenarioPath, ...readScenario(scenarioPath) };
      const name = basename(scenarioPath, '.yaml');
      for (const profile of ['secure', 'vanilla'] as const) {
        runs.push({ scenario: name, profile, result: record(store, scenario, `${name}-${profile}`, profile, {}) });
      }
    }
  } catch (error) {
    store.close();
    rmSync(scratch, { force: true });
    throw error;
  }
  store.close();
  for (const suffix of ['', '-wal', '-shm']) if (existsSync(db + suffix)) rmSync(db + suffix);
  renameSync(scratch, db);
  out(`chronovisor demo: two scenarios recorded in both profiles into ${db}\n`);
  const run = (scenario: string, profile: Profile): DriveResult => runs.find((r) => r.scenario === scenario && r.profile === profile)!.result;
  out('two-tenants: alice plants a secret, bob gives pages back, carol is created and scans her memory, dom0 reads alice\'s frame.');
  for (const profile of ['secure', 'vanilla'] as const) printResult(db, run('two-tenants', profile), profile);
  out('\nnetwork: alice pings bob through their VFs, mallory attacks with DMA descriptors, forged MSIs, spoofed MACs and VLAN tags;');
  out('dom0\'s network backend crashes half way: in vanilla alice\'s later pings go unanswered; through SIOM she gets every reply.');
  for (const profile of ['secure', 'vanilla'] as const) printResult(db, run('network', profile), profile);
  const holds = (scenario: string): boolean => violationCount(run(scenario, 'vanilla').summary) > 0 && violationCount(run(scenario, 'secure').summary) === 0;
  out('');
  out(holds('two-tenants') && holds('network')
    ? 'vanilla Xen leaks (dom0 reads plaintext memory and packets, carol finds bob\'s secret, mallory spoofs alice) and its I/O dies with dom0; SMM and SIOM hold: no violation in the secure runs.'
    : 'unexpected: the demo should leak in vanilla and hold in secure; run `npx chronovisor verify` on it.');
  const vanilla = run('two-tenants', 'vanilla');
  const network = run('network', 'secure');
  out('\nnext:');
  out(`  ${CLI} runs ${quote(db)}`);
  out(`  ${CLI} diff ${quote(db)} ${run('two-tenants', 'secure').run} ${vanilla.run}`);
  if (vanilla.firstViolationSeq !== undefined) out(`  ${CLI} state ${quote(db)} --run ${vanilla.run} --at ${vanilla.firstViolationSeq}`);
  out(`  ${CLI} log ${quote(db)} --run ${network.run} --kind msi --kind dma.request --limit 20`);
  out(`  ${CLI} export pcap ${quote(db)} --run ${network.run} --out network.pcap`);
  out(`  ${CLI} fork ${quote(db)} --run ${vanilla.run} --at 0 --set profile=secure --name what-if-smm`);
  out(`  ${CLI} verify ${quote(db)}`);
  // With a terminal to show it in, the demo goes on in the TUI, on the run that leaks.
  if (process.stdout.isTTY && process.stdin.isTTY) return (await import('./tui.ts')).tuiCommand(db, { run: String(vanilla.run) });
  return 0;
}
