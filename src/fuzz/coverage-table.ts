/**
 * The coverage table printed at the end of a campaign: per family of features, what the
 * campaign reached and what it never did, against the lists the spec and the model define
 * (exit reasons, VT-d fault reasons, hypercalls, dom0 actions, NIC verdicts, event kinds,
 * distances from breaking). Families without a closed list (exit qualifications, event-kind
 * pairs) give only what was reached.
 */
import { EVENT_KINDS, HYPERCALL_NAMES, INVARIANTS } from '../events/schema.ts';
import { ExitReason } from '../core/hardware/vmx/exit-reasons.ts';
import { DmarFaultReason, IrFaultReason } from '../core/hardware/iommu/index.ts';
import type { Verdict } from '../core/hardware/nic/switch.ts';
import { DOM0_OPS } from './actions.ts';
import { NEAR_BUCKETS, NEAR_MEASURES } from './features.ts';
import type { Coverage } from './fuzz-machine.ts';

/** Every verdict a frame can get (switch.ts's Verdict, as a list). */
const VERDICTS = ['ok', 'runt', 'spoof', 'vlan', 'security-group', 'unknown-destination', 'no-rx-descriptor', 'dma-fault', 'grant-fault', 'backend-down', 'tag-mismatch'] as const satisfies readonly Verdict[];
// A verdict added to switch.ts and not here fails to compile.
const verdictsComplete: Exclude<Verdict, (typeof VERDICTS)[number]> extends never ? true : false = true;
void verdictsComplete;

export interface CoverageRow {
  family: string;
  reached: string[];
  /** null: the family has no closed list. */
  never: string[] | null;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const EXIT_NAMES = new Map<number, string>(Object.entries(ExitReason).map(([name, n]) => [n, name]));

/** The detail of every feature of a family (`family:detail`), sorted. */
function details(coverage: Coverage, family: string): string[] {
  const prefix = `${family}:`;
  return [...coverage.features.counts.keys()].filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length)).sort();
}

function closed(family: string, universe: readonly string[], reached: ReadonlySet<string>): CoverageRow {
  return { family, reached: universe.filter((x) => reached.has(x)), never: universe.filter((x) => !reached.has(x)) };
}

export function coverageTable(coverage: Coverage): CoverageRow[] {
  const exits = [...EXIT_NAMES.keys()].sort((a, b) => a - b);
  const faults = [...Object.values(DmarFaultReason), ...Object.values(IrFaultReason)].sort((a, b) => a - b);
  const hypercalls = details(coverage, 'hypercall');
  const dom0 = details(coverage, 'dom0');
  const verdicts = new Set(details(coverage, 'net').map((d) => d.split(':')[1]));
  const near = new Set(details(coverage, 'near'));
  return [
    closed('exit reasons', exits.map((r) => EXIT_NAMES.get(r)!), new Set([...coverage.exitReasons].map((r) => EXIT_NAMES.get(r) ?? String(r)))),
    { family: 'exit reasons with qualifications', reached: details(coverage, 'exit').map((d) => { const [r, q] = d.split(':'); return `${EXIT_NAMES.get(Number(r)) ?? r}:${q}`; }), never: null },
    closed('VT-d fault reasons', faults.map(hex), new Set([...coverage.faultReasons].map(hex))),
    closed('hypercalls', HYPERCALL_NAMES, new Set(hypercalls.map((d) => d.split(':')[0]))),
    { family: 'hypercall results', reached: hypercalls, never: null },
    closed('dom0 actions', DOM0_OPS, new Set(dom0.map((d) => d.split(':')[0]))),
    closed('NIC verdicts', VERDICTS, verdicts),
    { family: 'NIC verdicts by point', reached: details(coverage, 'net'), never: null },
    closed('event kinds', EVENT_KINDS, coverage.kinds),
    { family: 'event-kind pairs', reached: details(coverage, 'pair'), never: null },
    closed('distance from breaking (frames)', NEAR_MEASURES.flatMap((m) => NEAR_BUCKETS.map((b) => `${m}:${b}`)), near),
    closed('invariants broken', INVARIANTS, new Set(details(coverage, 'violation'))),
  ];
}

/** The table as text: a line per family, with counts, then what was never reached. */
export function coverageTableText(rows: CoverageRow[]): string[] {
  const lines = [`${'coverage'.padEnd(34)} ${'reached'.padStart(9)}  never reached`];
  for (const row of rows) {
    const count = row.never === null ? String(row.reached.length) : `${row.reached.length}/${row.reached.length + row.never.length}`;
    const never = row.never === null ? '(no closed list)' : row.never.length === 0 ? '-' : row.never.join(', ');
    lines.push(`${row.family.padEnd(34)} ${count.padStart(9)}  ${never}`);
  }
  return lines;
}
