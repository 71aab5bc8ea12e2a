/**
 * `npm run bench [-- SUITE...]`: prints the figures the issues ask for. Benchmarks are not
 * tests: they measure this machine and never fail the build.
 */
import { benchCpu } from './cpu.ts';
import { benchFuzz } from './fuzz.ts';
import { benchIo } from './io.ts';
import { benchStore, type Figure } from './store.ts';

const suites: Record<string, () => Figure[] | Promise<Figure[]>> = {
  store: () => benchStore(Number(process.env.CHRONOVISOR_BENCH_EVENTS ?? 10_000_000)),
  cpu: () => benchCpu(),
  io: () => benchIo(),
  tui: (await import('./tui.ts')).benchTui,
  fuzz: () => benchFuzz(),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of wanted.length ? wanted : Object.keys(suites)) {
  const suite = suites[name];
  if (!suite) {
    process.stderr.write(`bench: no suite '${name}'; suites: ${Object.keys(suites).join(', ')}\n`);
    process.exit(2);
  }
  process.stderr.write(`running ${name} benchmark...\n`);
  const started = process.hrtime.bigint();
  const figures = await suite();
  const width = Math.max(...figures.map((f) => f.name.length));
  console.log(`\n${name} (${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(0)} s, node ${process.version}, ${process.platform})`);
  for (const f of figures) {
    const goal = f.goal ? `  goal ${f.goal}: ${f.ok ? 'met' : 'NOT met'}` : '';
    console.log(`  ${f.name.padEnd(width)}  ${f.value.padStart(14)}${goal}`);
  }
}
