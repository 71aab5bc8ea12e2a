/**
 * CPU benchmark (issue 3): guest instructions per second on a compute workload (the bundled
 * bench-compute guest: a branch-free CRC-32, EPT, secure profile), with full recording and
 * with recording off, and bytes per cpu.step on disk.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingStore } from '../src/events/store.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { initialState } from '../src/core/machine/state.ts';
import { nextStep, recordScenario } from '../src/replay/recorder.ts';
import type { Figure } from './store.ts';

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Several copies of the workload one after another, for a run long enough to measure. */
function scenario(copies: number): { text: string; config: MachineConfig } {
  // The guest and its %includes (lib/...), read from the bundled guests' folder.
  const readGuest = (name: string): string => readFileSync(new URL(`../recordings/guests/${name}`, import.meta.url), 'utf8');
  const domains = Array.from({ length: copies }, (_, i) =>
    `  - { name: crc${i}, memoryKiB: 1024, paging: ept, start: ${i * 250_000}, guest: { x86: { source: bench-compute.asm } } }`);
  const text = ['seed: cpu-bench', 'machine: { memoryMiB: 64, pcpus: 1, profile: secure, timeslice: 100000 }', 'dom0: { memoryKiB: 64 }', 'domains:', ...domains].join('\n');
  return { text, config: parseScenario(text, 'cpu-bench.yaml', readGuest) };
}

/** The machine alone (recording off) to the end: instructions and seconds. */
function runBare(config: MachineConfig): { instructions: number; seconds: number } {
  const machine = new Machine(initialState(config));
  let instructions = 0;
  const t = process.hrtime.bigint();
  while (!machine.state.halted) if (nextStep(machine)[0].kind === 'cpu.step') instructions++;
  return { instructions, seconds: seconds(t) };
}

function runRecorded(path: string, text: string, config: MachineConfig): { result: ReturnType<typeof recordScenario>; seconds: number } {
  const store = RecordingStore.create(path, 'bench');
  const t = process.hrtime.bigint();
  const result = recordScenario(store, config, {
    name: 'cpu', scenarioText: text, scenarioPath: 'cpu-bench.yaml', config: '{}', simVersion: 'bench', writerPid: process.pid,
  });
  const elapsed = seconds(t);
  store.close();
  return { result, seconds: elapsed };
}

/** Runs of each path, alternately (odd, for a median). */
const PAIRS = 5;

export function benchCpu(copies = 10): Figure[] {
  const { text, config } = scenario(copies);
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-cpu-bench-'));
  try {
    // Both paths once first, so that neither is measured with a cold JIT and the other warm.
    const warm = scenario(2);
    runBare(warm.config);
    runRecorded(join(dir, 'warm-up.db'), warm.text, warm.config);
    // Then each path PAIRS times, alternately: this machine's speed drifts by ±10% from one
    // second to the next, so a pair measures the overhead and the median pair reports it.
    const pairs = Array.from({ length: PAIRS }, (_, i) => {
      const bare = runBare(config);
      const path = join(dir, `cpu-${i}.db`);
      const recorded = runRecorded(path, text, config);
      return { bare, recorded, bytes: statSync(path).size };
    });
    const overheads = pairs.map((p) => p.recorded.seconds / p.bare.seconds).sort((a, b) => a - b);
    const overhead = overheads[(PAIRS - 1) / 2];
    const { result } = pairs[0].recorded;
    const steps = result.summary.byKind['cpu.step'] ?? 0;
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[(PAIRS - 1) / 2];
    const bareRate = median(pairs.map((p) => p.bare.instructions / p.bare.seconds));
    const recordedRate = median(pairs.map((p) => steps / p.recorded.seconds));
    const bytes = pairs[0].bytes;
    return [
      { name: 'guest instructions (10 x bench-compute)', value: fmt(steps) },
      { name: `instructions/s, recording off (median of ${PAIRS})`, value: fmt(bareRate) },
      { name: `instructions/s, full recording (median of ${PAIRS})`, value: fmt(recordedRate), goal: '>= 3,000,000', ok: recordedRate >= 3_000_000 },
      { name: `recording overhead, on / off time (median of ${PAIRS} pairs: ${overheads.map((o) => o.toFixed(2)).join(', ')})`, value: `${overhead.toFixed(2)}x`, goal: '<= 1.25x', ok: overhead <= 1.25 },
      { name: 'events per instruction', value: (result.summary.events / steps).toFixed(2) },
      { name: 'bytes per cpu.step on disk (whole file)', value: (bytes / steps).toFixed(2), goal: '<= 3.75', ok: bytes / steps <= 3.75 },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
