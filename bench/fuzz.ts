/**
 * Fuzzer benchmark (issues 5 and 16):
 * - in process, one thread: cases per second of a 10-second secure campaign with every action
 *   family, and of one focused on x86 attackers, with the VM exits per second it executes;
 * - per planted flaw, random and guided: time and cases to the first counterexample for seeds
 *   1, 2 and 3 (at most 5000 cases), the median over the seeds, and the median over the flaws;
 * - through the command line, 10-second secure campaigns: 1 and 2 worker threads on this
 *   machine, then 1, 2 and 4 `chronovisor worker` processes on a redis-server started here
 *   (same machine): cases/s and exits/s, the scaling from 1 to 2 (and to 4), and the queue's overhead
 *   against the threads at 1 worker;
 * - the mutation suite (npm run mutants) at a shorter budget per mutant and mode
 *   (CHRONOVISOR_BENCH_MUTANT_SECONDS, default 15): kill rate and median time to find per
 *   mode, and random's median over guided's where both found the mutant;
 * - the machine's own exit handling rate: a guest looping on CPUID, recording off. That is
 *   the ceiling for exits per second, not what the fuzzer achieves.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { ModeSummary } from '../src/fuzz/mutants.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { initialState } from '../src/core/machine/state.ts';
import { FLAWS, type FlawName } from '../src/core/hypervisor/flaws.ts';
import { nextStep } from '../src/replay/recorder.ts';
import type { Action } from '../src/fuzz/actions.ts';
import { runCampaign, type CampaignOptions, type CampaignResult } from '../src/fuzz/campaign.ts';
import { runGuidedCampaign } from '../src/fuzz/guided.ts';
import type { Figure } from './store.ts';
import { queueScaling } from './fuzz-scaling.ts';
import { envCount } from './env.ts';

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const CAMPAIGN_MS = 10_000;
const FLAW_SEEDS = [1, 2, 3];
const FLAW_RUNS = 5000;
/** A safety net for the suite's length: a flaw not found by then counts as not found. */
const FLAW_TIME_CAP_MS = 30_000;
const GOAL_CASES = 1000;
const GOAL_EXITS = 100_000;
const GOAL_FIND_S = 10;

/** A timed secure campaign: cases and executed VM exits per second. */
function campaignRate(focus: Action['kind'][] | undefined, maxCommands?: number): { cases: number; casesPerSecond: number; exitsPerSecond: number } {
  const t = process.hrtime.bigint();
  const result = runCampaign({ profile: 'secure', flaws: [], seed: 1, timeMs: CAMPAIGN_MS, focus, maxCommands });
  const s = seconds(t);
  if (result.counterexample) throw new Error(`the secure campaign found ${result.counterexample.finding}`);
  // Coverage counts the exits each case ran (a prepared machine's boot exits are not run again).
  return { cases: result.runs, casesPerSecond: result.runs / s, exitsPerSecond: result.coverage.exits / s };
}

interface Hunt { seconds: number; runs: number; found: boolean }

type Mode = 'random' | 'guided';
const CAMPAIGNS: Record<Mode, (o: CampaignOptions) => CampaignResult> = { random: runCampaign, guided: runGuidedCampaign };

function hunt(flaw: FlawName, seed: number, mode: Mode): Hunt {
  const started = performance.now();
  const r = CAMPAIGNS[mode]({ profile: 'secure', flaws: [flaw], seed, runs: FLAW_RUNS, timeMs: FLAW_TIME_CAP_MS, clock: () => performance.now() });
  const c = r.counterexample;
  if (c === undefined) return { seconds: Infinity, runs: r.runs, found: false };
  return { seconds: (c.msToFind ?? performance.now() - started) / 1000, runs: c.runsToFind, found: true };
}

const secondsText = (s: number): string => (Number.isFinite(s) ? s.toFixed(2) : 'not found');

/** Per flaw and mode, the median time over the seeds (each seed's time and cases in the name). */
function flawFigures(): Figure[] {
  const medians: Record<Mode, number[]> = { random: [], guided: [] };
  const rows = FLAWS.flatMap((flaw): Figure[] => (['random', 'guided'] as const).map((mode): Figure => {
    const hunts = FLAW_SEEDS.map((seed) => hunt(flaw, seed, mode));
    const m = median(hunts.map((h) => h.seconds));
    medians[mode].push(m);
    const each = hunts.map((h) => (h.found ? `${h.seconds.toFixed(2)} s/${h.runs}` : `not in ${h.runs}`)).join(', ');
    return { name: `  ${flaw}, ${mode}: median s (s/cases to find, seeds ${FLAW_SEEDS.join(',')}: ${each})`, value: secondsText(m), goal: `< ${GOAL_FIND_S} s`, ok: m < GOAL_FIND_S };
  }));
  const overall = (mode: Mode): number => median(medians[mode]);
  const wins = FLAWS.filter((_, i) => medians.guided[i] < medians.random[i]).length;
  return [
    ...rows,
    ...(['random', 'guided'] as const).map((mode): Figure => ({ name: `median over the ${FLAWS.length} flaws of the median time to find, ${mode} (s)`, value: secondsText(overall(mode)), goal: `< ${GOAL_FIND_S} s`, ok: overall(mode) < GOAL_FIND_S })),
    { name: 'flaws where guided has the lower median time to find', value: `${wins} of ${FLAWS.length}` },
  ];
}


const GOAL_KILL = 0.9;
const GOAL_GUIDED_SPEEDUP = 3;

/** The mutation suite, each mutant fuzzed `seconds` per mode (a child process: it copies the tree). */
function mutantFigures(seconds: number): Figure[] {
  const script = join(import.meta.dirname, '..', 'scripts', 'mutants.ts');
  const run = spawnSync(process.execPath, ['--import', 'tsx', script, '--time', `${seconds}s`, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`npm run mutants failed (exit ${run.status}): ${run.stderr}`);
  const { summary } = JSON.parse(run.stdout) as { summary: ModeSummary[] };
  const by = (mode: string): ModeSummary => summary.find((s) => s.mode === mode)!;
  const rows = summary.flatMap((s): Figure[] => [
    { name: `  mutants killed within ${seconds} s, ${s.mode}`, value: `${s.killed} of ${s.total}`, goal: `>= ${GOAL_KILL * 100}% (in 60 s)`, ok: s.killed >= GOAL_KILL * s.total },
    { name: `  median time to find a mutant, ${s.mode} (s; where both modes found it: ${s.medianWhereBoth?.toFixed(2) ?? '-'})`, value: s.median === null ? '-' : s.median.toFixed(2) },
  ]);
  const random = by('random').medianWhereBoth;
  const guided = by('guided').medianWhereBoth;
  const speedup = random !== null && guided !== null && guided > 0 ? random / guided : NaN;
  return [
    { name: `the mutation suite (npm run mutants), ${seconds} s per mutant and mode, 1 worker:`, value: '' },
    ...rows,
    { name: '  guided speed-up: random\'s median time to find over guided\'s, where both found it', value: Number.isNaN(speedup) ? '-' : `${speedup.toFixed(2)}x`, goal: `>= ${GOAL_GUIDED_SPEEDUP}x`, ok: speedup >= GOAL_GUIDED_SPEEDUP },
  ];
}

const CPUID_LOOP = (iterations: number): string => `
seed: exit-bench
machine: { memoryMiB: 4, pcpus: 1, profile: secure, timeslice: 100000 }
dom0: { memoryKiB: 64 }
domains:
  - name: looper
    memoryKiB: 64
    paging: ept
    guest:
      x86:
        asm: |
          bits 32
          org 0x1000
                  mov edi, ${iterations}
          again:  xor eax, eax
                  cpuid
                  dec edi
                  jnz again
                  mov eax, 29          ; sched_op
                  mov ebx, 2           ; SCHEDOP_shutdown
                  vmcall
`;

/** The machine alone (recording off) handling CPUID exits back to back: exits per second. */
function machineExitRate(iterations: number): { exits: number; perSecond: number } {
  const machine = new Machine(initialState(parseScenario(CPUID_LOOP(iterations), 'cpuid-loop.yaml')));
  let exits = 0;
  const t = process.hrtime.bigint();
  while (!machine.state.halted) for (const e of nextStep(machine)) if (e.kind === 'vm.exit') exits++;
  const s = seconds(t);
  if (exits < iterations) throw new Error(`the CPUID loop made ${exits} exits, expected at least ${iterations}`);
  return { exits, perSecond: exits / s };
}

/** Actions in a small case (the goal's "small scenarios"): the fuzzer's default is up to 12. */
const SMALL_CASE_ACTIONS = 4;

export async function benchFuzz(): Promise<Figure[]> {
  // Read first: a bad value is refused before minutes of campaigns, not after.
  const mutantSeconds = envCount(process.env, 'CHRONOVISOR_BENCH_MUTANT_SECONDS', 15);
  const small = campaignRate(undefined, SMALL_CASE_ACTIONS);
  const all = campaignRate(undefined);
  const x86 = campaignRate(['x86']);
  const raw = machineExitRate(200_000);
  return [
    { name: `cases/s, secure, all families, small cases: <= ${SMALL_CASE_ACTIONS} actions (${fmt(small.cases)} cases in ${CAMPAIGN_MS / 1000} s, 1 thread)`, value: fmt(small.casesPerSecond), goal: `>= ${fmt(GOAL_CASES)}/core`, ok: small.casesPerSecond >= GOAL_CASES },
    { name: `cases/s, secure, all families, default cases: <= 12 actions (${fmt(all.cases)} cases in ${CAMPAIGN_MS / 1000} s, 1 thread)`, value: fmt(all.casesPerSecond) },
    { name: `cases/s, secure, focus x86, default cases (${fmt(x86.cases)} cases in ${CAMPAIGN_MS / 1000} s, 1 thread)`, value: fmt(x86.casesPerSecond) },
    { name: 'VM exits/s executed by the fuzzer, focus x86', value: fmt(x86.exitsPerSecond), goal: `>= ${fmt(GOAL_EXITS)}/core`, ok: x86.exitsPerSecond >= GOAL_EXITS },
    { name: 'VM exits/s executed by the fuzzer, all families', value: fmt(all.exitsPerSecond) },
    { name: `time to find each planted flaw, random and guided (at most ${FLAW_RUNS} cases):`, value: '' },
    ...flawFigures(),
    ...(await queueScaling()),
    ...mutantFigures(mutantSeconds),
    { name: `machine's exit handling rate, not the fuzzer's: CPUID loop, ${fmt(raw.exits)} exits, recording off (exits/s)`, value: fmt(raw.perSecond) },
  ];
}
