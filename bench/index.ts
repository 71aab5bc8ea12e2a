/**
 * `npm run bench [-- SUITE...]`: prints the figures the issues ask for, each suite in a fresh
 * process. Benchmarks are not tests: they measure this machine and never fail the build.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchCpu } from './cpu.ts';
import { benchForensics } from './forensics.ts';
import { benchFuzz } from './fuzz.ts';
import { benchIo } from './io.ts';
import { benchScale } from './scale.ts';
import { benchStore, type Figure } from './store.ts';
import { benchTui } from './tui.ts';
import { BenchSettingError, envCount } from './env.ts';

const suites: Record<string, () => Figure[] | Promise<Figure[]>> = {
  store: () => benchStore(envCount(process.env, 'CHRONOVISOR_BENCH_EVENTS', 10_000_000, 1000)),
  cpu: () => benchCpu(),
  io: () => benchIo(),
  tui: () => benchTui(envCount(process.env, 'CHRONOVISOR_BENCH_EVENTS', 10_000_000, 1000)),
  scale: () => benchScale(),
  fuzz: () => benchFuzz(),
  forensics: () => benchForensics(),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.find((name) => !(name in suites));
if (unknown !== undefined) {
  process.stderr.write(`bench: no suite '${unknown}'; suites: ${Object.keys(suites).join(', ')}\n`);
  process.exit(2);
}
// scale records up to 100M events (hours here): only when asked for by name.
const names = wanted.length ? wanted : Object.keys(suites).filter((name) => name !== 'scale');
if (names.length > 1) {
  // Each suite in a process of its own: one suite's heap and JIT state (the store and TUI
  // suites leave hundreds of MB behind) would otherwise slow the next one down.
  for (const name of names) {
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), name], { stdio: 'inherit' });
    if (child.status !== 0) process.exit(child.status ?? 1);
  }
} else {
  try {
    await runSuite(names[0]);
  } catch (error) {
    if (!(error instanceof BenchSettingError)) throw error;
    process.stderr.write(`bench: ${error.message}\n`);
    process.exit(2);
  }
}

async function runSuite(name: string): Promise<void> {
  process.stderr.write(`running ${name} benchmark...\n`);
  const started = process.hrtime.bigint();
  const figures = await suites[name]();
  const width = Math.max(...figures.map((f) => f.name.length));
  console.log(`\n${name} (${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(0)} s, node ${process.version}, ${process.platform})`);
  for (const f of figures) {
    const goal = f.goal ? `  goal ${f.goal}: ${f.ok ? 'met' : 'NOT met'}` : '';
    console.log(`  ${f.name.padEnd(width)}  ${f.value.padStart(14)}${goal}`);
  }
}
