/** `chronovisor bench NAME`: benchmarks of the model (paging: shadow paging versus EPT on the bundled workloads). */
import { fileURLToPath } from 'node:url';
import { SHADOW_CACHE_ADDRESS_SPACES } from '../core/hypervisor/vmx/handlers.ts';
import { EXIT_CYCLES, WALK_REF_CYCLES, runPagingWorkload, type PagingResult } from '../replay/paging-bench.ts';
import { InputError } from '../events/errors.ts';
import { out } from './context.ts';
import { guestFiles } from './guest-files.ts';

const WORKLOADS = [
  { name: 'compute', file: 'bench-compute.asm', what: 'ALU loop, paging off' },
  { name: 'context-switch', file: 'bench-ctxswitch.asm', what: 'CR3 load every ~50 instructions' },
  { name: 'page-fault', file: 'bench-pagefault.asm', what: 'demand paging, INVLPG' },
];

/** The bundled guests are read as a scenario in recordings/ reads them, with their includes. */
const BUNDLED = fileURLToPath(new URL('../../recordings/bench-paging.yaml', import.meta.url));

/** What the paging table's columns model, and the seed paper's claims beside them. */
const PAGING_LEGEND = [
  'What each column models (each workload alone on one pCPU, secure profile, a 1 MiB domain):',
  '  instructions  guest instructions retired: in the guest, or completed by Xen after the exit they caused',
  '  VM exits      round trips to the hypervisor, by reason (shadow: CR3 loads, INVLPG, #PF on a shadow miss)',
  '  page walks    TLB fills; walk refs: paging-structure references of those walks (shadow: 2, the',
  '                shadow table; EPT: up to 14, two-dimensional) plus Xen\'s own walks of the guest tables',
  '                when it resynchronises a kept shadow',
  `  cycles        instructions + ${EXIT_CYCLES} per exit + ${WALK_REF_CYCLES} per walk reference; CPI = cycles / instructions`,
  `Shadow paging keeps the shadows of the ${SHADOW_CACHE_ADDRESS_SPACES} most recently used address spaces across CR3 loads, as Xen`,
  'does, so a switch back costs a resync instead of a rebuild fault by fault.',
  'The seed paper (Zhang Chaopeng, memory virtualisation on Intel VT) virtualises the MMU with a virtual',
  'TLB (shadow page tables: every CR3 load, INVLPG and guest #PF traps to the VMM) and evaluates two',
  'methods by experiment, naming optimisations; EPT is the hardware answer that moves the walks into the',
  'processor. The model shows the trade: EPT removes the exits, shadow paging keeps walks short.',
];

interface BenchOptions {
  json?: boolean;
}

/** Every benchmark `chronovisor bench` runs, by name (test/cli-bench.test.ts runs each). */
export const BENCHMARKS: Readonly<Record<string, (options: BenchOptions) => number>> = { paging: benchPaging };

export function benchCommand(what: string, options: BenchOptions): number {
  const bench = Object.hasOwn(BENCHMARKS, what) ? BENCHMARKS[what] : undefined;
  if (bench === undefined) throw new InputError('argument', `bench ${what}: no such benchmark; benchmarks: ${Object.keys(BENCHMARKS).join(', ')}`);
  return bench(options);
}

function benchPaging(options: BenchOptions): number {
  const results: PagingResult[] = [];
  for (const w of WORKLOADS) {
    for (const paging of ['shadow', 'ept'] as const) {
      results.push(runPagingWorkload({ name: w.name, source: `guests/${w.file}`, readFile: guestFiles(BUNDLED).read }, paging));
    }
  }
  if (options.json) {
    for (const r of results) out(JSON.stringify(r));
    return 0;
  }
  out(`shadow paging versus EPT (modelled: 1 cycle/instruction, ${EXIT_CYCLES} cycles/VM exit, ${WALK_REF_CYCLES} cycles/paging-structure reference)\n`);
  out(`${'workload'.padEnd(15)} ${'paging'.padEnd(7)} ${'instructions'.padStart(12)} ${'VM exits'.padStart(9)} ${'page walks'.padStart(10)} ${'walk refs'.padStart(10)} ${'cycles'.padStart(12)} ${'CPI'.padStart(6)}  top exit reasons`);
  for (const r of results) {
    const top = Object.entries(r.exitsByReason).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([n, c]) => `${n} ${c}`).join(', ');
    out(`${r.workload.padEnd(15)} ${r.paging.padEnd(7)} ${String(r.instructions).padStart(12)} ${String(r.exits).padStart(9)} ${String(r.pageWalks).padStart(10)} ${String(r.walkRefs).padStart(10)} ${String(r.cycles).padStart(12)} ${(r.cycles / r.instructions).toFixed(2).padStart(6)}  ${top}`);
  }
  out('');
  for (const w of WORKLOADS) {
    const [shadow, ept] = results.filter((r) => r.workload === w.name);
    out(`${w.name.padEnd(15)} (${w.what}): EPT ${ept.cycles < shadow.cycles ? 'saves' : 'costs'} ${Math.abs(100 - (100 * ept.cycles) / shadow.cycles).toFixed(1)}% of shadow's cycles; ${shadow.exits - ept.exits} fewer exits, ${ept.walkRefs - shadow.walkRefs} more walk references`);
  }
  out('');
  for (const line of PAGING_LEGEND) out(line);
  return 0;
}
