/**
 * chronovisor's command line. Data goes to stdout, messages to stderr.
 * Exit codes: 0 ok; 1 verification failed, --fail-on-violation hit, or the disk was full (what
 * was committed is intact); 2 bad input or usage;
 * 3 an internal error (a bug: please report it with the seed and seq it prints).
 */
import { Command, CommanderError, Option } from 'commander';
import { AssertionFailed, InputError, isStorageFull } from '../events/errors.ts';
import { SIM_VERSION } from './context.ts';
import { ReaderGone } from './output.ts';
import { GUEST_SOURCE_KIB_MAX_DEFAULT } from './guest-files.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 3;

/**
 * Each command's module is loaded when the command runs, so a command pays only for its own
 * code: loaded up front, fuzz's fast-check and BullMQ cost every other command ~20 MB and
 * ~0.15 s (verify's worker threads load only what they run).
 */
const commands = {
  inspect: () => import('./inspect.ts'),
  record: () => import('./record.ts'),
  bench: () => import('./bench.ts'),
  check: () => import('./check.ts'),
  export: () => import('./export.ts'),
  exportEvents: () => import('./export-events.ts'),
  fuzz: () => import('./fuzz.ts'),
  forensics: () => import('./forensics.ts'),
  worker: () => import('./worker.ts'),
  tui: () => import('./tui.ts'),
};

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function program(): Command {
  const cli = new Command('chronovisor')
    .description('Deterministic, event-sourced simulator of hypervisor isolation (Xen + the paper\'s SMM/SIOM on VT-x/VT-d)')
    .version(SIM_VERSION)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  cli.command('run').argument('<scenario>', 'scenario YAML file')
    .description('record a scenario as a new run')
    .option('--out <db>', 'recording to add the run to (default: SCENARIO with .db)')
    .option('--name <name>', 'run name (default: scenario-profile)')
    .addOption(new Option('--profile <profile>', 'override the scenario\'s profile').choices(['secure', 'vanilla']))
    .option('--fail-on-violation', 'stop at the first violation and exit 1')
    .option('--max-events <n>', 'stop after this many events')
    .option('--guest-path <dir>', 'a folder guest sources and %include files may come from besides the scenario\'s own (repeatable)', collect, [])
    .option('--max-source-kib <n>', `what the guest sources may total, an %include counting each time (default ${GUEST_SOURCE_KIB_MAX_DEFAULT})`)
    .action(async (scenario, options) => finish(await (await commands.record()).runCommand(scenario, options)));

  cli.command('runs').argument('<db>', 'recording').description('list the runs of a recording')
    .option('--json', 'one JSON object per run')
    .action(async (db, options) => finish(await (await commands.inspect()).runsCommand(db, options)));

  cli.command('log').argument('<db>', 'recording').description('print events')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--kind <kind>', 'only this kind, or a family like mem (repeatable)', collect, [])
    .option('--domain <domain>', 'only events concerning this domain (id or name)')
    .option('--from <seq>', 'first seq')
    .option('--to <seq>', 'last seq (inclusive)')
    .option('--limit <n>', 'print at most n events')
    .option('--json', 'one JSON object per line')
    .action(async (db, options) => finish(await (await commands.inspect()).logCommand(db, options)));

  cli.command('state').argument('<db>', 'recording').description('the machine state at a seq')
    .requiredOption('--at <seq>', 'position: the state after events 0..seq-1, or "end"')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--json', 'as JSON')
    .action(async (db, options) => finish(await (await commands.inspect()).stateCommand(db, options)));

  cli.command('verify').argument('<db>', 'recording').description('check the hash chain and re-execute from every checkpoint')
    .option('--run <run>', 'only this run (default: all)')
    .option('--workers <n>', 'worker threads for re-execution (default: one per core)')
    .option('--json', 'one JSON report per run')
    .action(async (db, options) => finish(await (await commands.check()).verifyCommand(db, options)));

  cli.command('fork').argument('<db>', 'recording').description('branch a run at a seq with modifications')
    .requiredOption('--run <run>', 'the run to branch from')
    .requiredOption('--at <seq>', 'where to branch (moved back to the step boundary)')
    .option('--set <key=value>', 'a modification: profile=P, quantum=N, flaw.NAME=on|off, domain.NAME.ops=[...] (repeatable)', collect, [])
    .option('--name <name>', 'name of the new run')
    .option('--events <n>', 'record at most n new events (default: until the machine halts)')
    .action(async (db, options) => finish(await (await commands.check()).forkCommand(db, options)));

  cli.command('diff').argument('<db>', 'recording').argument('<runA>').argument('<runB>')
    .description('where two runs diverge, the regions where their behaviour differs (aligned by tick and actor), and how their states differ')
    .option('--regions <n>', 'describe the first n regions in full (default 10)')
    .option('--json', 'as JSON')
    .action(async (db, a, b, options) => finish(await (await commands.check()).diffCommand(db, a, b, options)));

  cli.command('bench').argument('<what>', 'paging: shadow paging versus EPT on the bundled workloads')
    .description('model benchmarks (figures of the model, not of this machine)')
    .option('--json', 'one JSON object per workload and method')
    .action(async (what, options) => finish(await (await commands.bench()).benchCommand(what, options)));

  const exports = cli.command('export').description('write a run\'s data for other tools');
  exports.command('pcap').argument('<db>', 'recording')
    .description('the frames that crossed the wire or the switch, as a libpcap file (timestamps: the machine\'s tick as microseconds)')
    .option('--run <run>', 'run id or name (default: the newest)')
    .requiredOption('--out <file>', 'the pcap file to write (- for standard output; a FIFO or device is written in place)')
    .option('--at <points>', 'comma list of points (vfN.tx, vfN.rx, switch, wire.in, wire.out, siom.tx, siom.rx, netback.tx, netback.rx) or all', 'switch,wire.in,wire.out')
    .option('--dropped', 'include frames that were dropped there')
    .option('--force', 'replace an existing --out file')
    .action(async (db, options) => finish(await (await commands.export()).exportPcapCommand(db, options)));
  const eventsExport = (name: string, description: string, action: 'exportJsonlCommand' | 'exportPerfettoCommand'): void => {
    exports.command(name).argument('<db>', 'recording').description(description)
      .option('--run <run>', 'run id or name (default: the newest)')
      .requiredOption('--out <file>', 'the file to write (- for standard output; a FIFO or device is written in place)')
      .option('--force', 'replace an existing --out file')
      .action(async (db, options) => finish(await (await commands.exportEvents())[action](db, options)));
  };
  eventsExport('jsonl', 'every event of a run, one JSON object a line (the objects log --json prints)', 'exportJsonlCommand');
  eventsExport('perfetto', 'a trace for the Perfetto UI (Trace Event Format JSON): pCPU and vCPU tracks, VM exits, DMA and MSI flows, violations, IOTLB and TLB counters', 'exportPerfettoCommand');

  cli.command('fuzz').description('adversarial campaigns: counterexamples are shrunk and recorded as runs (exit 1 when one is found)')
    .addOption(new Option('--profile <profile>', 'the profile to attack (default: secure)').choices(['secure', 'vanilla']))
    .option('--flaw <flaw>', 'plant a flaw in the secure profile (repeatable)', collect, [])
    .option('--focus <kinds>', 'only these action families, a comma list of guest, dom0, wire, dma, msi, x86 (default: all)')
    .option('--max-actions <n>', 'at most n actions per case (default 12); smaller cases run faster')
    .option('--time <duration>', 'how long, like 30s or 2m; stops at the first counterexample (default 60s)')
    .option('--runs <n>', 'how many cases instead of a time (shared among the workers)')
    .option('--seed <n>', 'the campaign seed, 0 to 2147483647; worker w fuzzes seed+w (default: random, printed)')
    .option('--path <path>', 'replay one counterexample: its fast-check path (with its --seed, and --focus and --max-actions if it had them)')
    .option('--workers <n>', 'worker threads (default: one per core)')
    .option('--out <db>', 'recording for counterexamples (default: fuzz.db; not created when nothing is found)')
    .option('--json', 'one JSON report on stdout')
    .option('--scoreboard', 'a bounded campaign per planted flaw (and the clean secure profile): found, runs and seconds to find, length; exit 0 only when every flaw is found and the clean one finds nothing')
    .option('--guided', 'coverage-guided: mutate a corpus of cases that reached something new (kept in --out) besides generating fresh ones')
    .option('--queue <url>', 'run the campaign on chronovisor worker processes through this Redis, redis://HOST:PORT[/DB]')
    .option('--resume <campaign>', 'resume a queue campaign whose coordinator stopped (with --queue; the id it printed)')
    .action(async (options) => finish(await (await commands.fuzz()).fuzzCommand(options)));

  cli.command('index').argument('<db>', 'recording').description('build the forensic index (history, who-wrote, provenance, reach, explain build it on first use)')
    .option('--run <run>', 'only this run (default: all)')
    .option('--force', 'rebuild it even if it is up to date')
    .action(async (db, options) => finish(await (await commands.forensics()).indexCommand(db, options)));

  const addressHelp = 'an address: mfn:321/64, mfn:321+0x10, gpa:alice:0x1000/62, linear:erin.v0:0x8000, iova:02:10.0:0x2000, reg:erin.v0:eax';
  cli.command('history').argument('<db>', 'recording').argument('<address>', addressHelp)
    .description('every access to an address: reads, writes, fetches, DMA, copies, scrubs, and changes of its mapping, owner and key')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--from <seq>', 'first seq')
    .option('--to <seq>', 'last seq (inclusive)')
    .option('--at <seq>', 'where the address is resolved (default: the end of the range)')
    .option('--kind <kind>', 'only these accesses: r, w, x, map, unmap, own, key, scrub, dma, copy (repeatable or a comma list)', collect, [])
    .option('--limit <n>', 'print at most n accesses')
    .option('--json', 'one JSON object per access')
    .action(async (db, address, options) => finish(await (await commands.forensics()).historyCommand(db, address, options)));

  cli.command('who-wrote').argument('<db>', 'recording').argument('<address>', addressHelp)
    .description('for each byte, the last write before a seq and who made it')
    .requiredOption('--at <seq>', 'the position: writes before this seq count')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--json', 'as JSON')
    .action(async (db, address, options) => finish(await (await commands.forensics()).whoWroteCommand(db, address, options)));

  cli.command('provenance').argument('<db>', 'recording').argument('<address>', addressHelp)
    .description('where the bytes came from: backwards through instructions, copies, DMA, the NIC and the switch, to their origins')
    .requiredOption('--at <seq>', 'the bytes as they were at this position')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--budget <n>', 'follow at most n hops (default 400)')
    .option('--depth <n>', 'follow chains at most n hops long (default 64)')
    .option('--json', 'as JSON: the hops and the origins')
    .action(async (db, address, options) => finish(await (await commands.forensics()).provenanceCommand(db, address, options)));

  cli.command('reach').argument('<db>', 'recording').argument('<address>', addressHelp)
    .description('where the bytes went after a seq: copies, reads, frames on the wire, and whether anyone but their owner saw them in plaintext')
    .requiredOption('--at <seq>', 'follow the bytes as they were at this position')
    .option('--to <seq>', 'follow them up to this seq (inclusive; default: the end of the run)')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--limit <n>', 'list at most n events (default 500; the rest are counted)')
    .option('--json', 'as JSON')
    .action(async (db, address, options) => finish(await (await commands.forensics()).reachCommand(db, address, options)));

  cli.command('explain').argument('<db>', 'recording').argument('<seq>', 'a violation event')
    .description('why an invariant broke: its rule, the access that broke it, where the data came from, and the events that made the access possible')
    .option('--run <run>', 'run id or name (default: the newest)')
    .option('--json', 'as JSON')
    .action(async (db, seq, options) => finish(await (await commands.forensics()).explainCommand(db, seq, options)));

  // Loaded on demand: BullMQ is not needed by the other commands.
  cli.command('worker').description('run the shards of fuzz campaigns from a BullMQ queue (until Ctrl-C)')
    .requiredOption('--queue <url>', 'the Redis of the queue, redis://HOST:PORT[/DB]')
    .option('--concurrency <n>', 'shards at once, each on a thread (default: one per core)')
    .action(async (options) => finish(await (await commands.worker()).workerCommand(options)));

  // Loaded on demand: Ink and React are not needed by the other commands.
  cli.command('tui').argument('<db>', 'recording').description('browse, rewind, fork and diff a recording in the terminal')
    .option('--run <run>', 'run id or name (default: the newest)')
    .action(async (db, options) => finish(await (await commands.tui()).tuiCommand(db, options)));
  cli.command('demo').description('record the bundled scenarios (two-tenants, network) in both profiles and summarise')
    .option('--out <db>', 'recording to write (default: recordings/demo.db)')
    .action(async (options) => finish(await (await commands.record()).demoCommand(options)));

  return cli;
}

let exitCode = EXIT_OK;
const finish = (code: number): void => { exitCode = code; };

function report(error: unknown): number {
  // `export ... --out - | head`: the reader has what it wanted.
  if (error instanceof ReaderGone) return EXIT_OK;
  if (error instanceof CommanderError) {
    // Help and version are not errors; everything else commander reports is a usage error.
    return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
  }
  if (error instanceof InputError) {
    process.stderr.write(`chronovisor: ${error.message}\n`);
    return EXIT_USAGE;
  }
  // A full disk is neither bad input nor a bug; what was committed before is intact.
  if (isStorageFull(error)) {
    process.stderr.write(`chronovisor: the disk did not take a write: ${(error as Error).message}\n`);
    return EXIT_FAILED;
  }
  const kind = error instanceof AssertionFailed ? 'internal error (an assertion failed; this is a bug)' : 'internal error';
  process.stderr.write(`chronovisor: ${kind}: ${(error as Error)?.stack ?? String(error)}\n`);
  return EXIT_INTERNAL;
}

// `chronovisor log DB | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT_OK);
  throw error;
});

try {
  await program().parseAsync(process.argv);
} catch (error) {
  exitCode = report(error);
}
process.exitCode = exitCode;
