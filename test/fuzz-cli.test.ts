/**
 * `chronovisor fuzz` end to end, through the real command line: a planted flaw is found,
 * recorded, verified and reproduced from the command it prints; a clean campaign writes
 * nothing; bad arguments are usage errors that write nothing; the scoreboard is one JSON
 * document with a row per planted flaw and one for the clean secure profile.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { FLAWS } from '../src/core/hypervisor/flaws.ts';
import { INVARIANTS } from '../src/events/schema.ts';
import { cli, describeResult, listing, parseJsonLines, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

const EXIT_USAGE = 2;
const TIMEOUT = { timeout: 120_000 };

interface RunRow { id: number; name: string; status: string; head: string; violations: number }
interface Found { seed: number; path: string; finding: string; actions: string[]; run: number; db: string; reproduce: string; explanation: { run: number; seq: number; invariant: string; rule: string; chain: number[] } | null }

let root: string;
before(() => { root = tempDir('chronovisor-fuzz-cli'); });
after(() => removeDir(root));

const caseDir = (): string => mkdtempSync(join(root, 'case-'));

async function ok(args: string[], cwd: string, code = 0): Promise<CliResult> {
  const r = await cli(args, cwd);
  assert.equal(r.code, code, describeResult(args, r));
  return r;
}

async function runRows(db: string, cwd: string): Promise<RunRow[]> {
  return parseJsonLines<RunRow>((await ok(['runs', db, '--json'], cwd)).stdout);
}

/** The first campaign of the file, shared by the tests that look at what it recorded. */
let flawDir: string;
let found: Found;

test('a planted flaw: found, shrunk, recorded as a run that verifies and shows the violation', TIMEOUT, async () => {
  flawDir = caseDir();
  const args = ['fuzz', '--flaw', 'no-key-switch', '--runs', '200', '--seed', '1', '--workers', '2', '--out', 'first.db', '--json'];
  const r = await ok(args, flawDir, 1);
  const report = JSON.parse(r.stdout) as { counterexamples: Found[]; flaws: string[] };
  assert.deepEqual(report.flaws, ['no-key-switch']);
  assert.ok(report.counterexamples.length >= 1, describeResult(args, r));
  found = report.counterexamples[0];
  assert.equal(typeof found.seed, 'number');
  assert.match(found.path, /^\d+(:\d+)*$/);
  assert.match(found.finding, /^frame-key-owner:/);
  // The JSON report explains it as `explain --json` does: the rule, and a chain ending at the violation.
  const why = found.explanation;
  assert.ok(why !== null, 'an explanation');
  assert.equal(why.run, found.run);
  assert.equal(why.invariant, 'frame-key-owner');
  assert.match(why.rule, /owner's key/);
  assert.equal(why.chain.at(-1), why.seq);
  assert.ok(Array.isArray(found.actions));
  assert.equal(typeof found.run, 'number');
  assert.match(found.reproduce, new RegExp(`^npx chronovisor fuzz .*--flaw no-key-switch .*--seed ${found.seed} --path ${found.path} --out first\\.db$`));

  const row = (await runRows('first.db', flawDir)).find((x) => x.id === found.run);
  assert.ok(row, `run ${found.run} is not in first.db`);
  assert.equal(row.status, 'complete');
  assert.ok(row.name.includes(`seed${found.seed}`) && row.name.includes(`path${found.path}`), `run name ${row.name}`);
  await ok(['verify', 'first.db', '--run', String(found.run)], flawDir);
  const log = await ok(['log', 'first.db', '--run', String(found.run), '--kind', 'violation'], flawDir);
  assert.match(log.stdout, /frame-key-owner/);
});

test('the printed reproduce command records the same run (same head hash)', TIMEOUT, async () => {
  assert.ok(found, 'needs the first test');
  const words = found.reproduce.split(' ');
  assert.deepEqual(words.slice(0, 3), ['npx', 'chronovisor', 'fuzz']);
  const args = words.slice(2);
  args[args.indexOf('--out') + 1] = 'second.db';
  const r = await ok(args, flawDir, 1);
  assert.match(r.stdout, /counterexample/);
  // The text report explains the counterexample: the rule, the access, the chain of seqs.
  assert.match(r.stdout, /^ {2}why \(npx chronovisor explain second\.db SEQ --run 1\):\n {4}violation frame-key-owner at seq \d+: /m);
  assert.match(r.stdout, /^ {6}rule: A frame is encrypted with its owner's key, never with the key of whichever domain happens to be live\.$/m);
  assert.match(r.stdout, /^ {6}the access: seq \d+ /m);
  assert.match(r.stdout, /^ {6}chain: (\d+ -> )+\d+$/m);
  const [first] = (await runRows('first.db', flawDir)).filter((x) => x.id === found.run);
  const second = await runRows('second.db', flawDir);
  assert.equal(second.length, 1);
  assert.equal(second[0].name, first.name);
  assert.equal(second[0].head, first.head, 'same case, same hash chain');
});

test('a campaign that finds nothing exits 0 and leaves no recording behind', TIMEOUT, async () => {
  const dir = caseDir();
  const r = await ok(['fuzz', '--runs', '60', '--seed', '3', '--workers', '1', '--out', 'clean.db'], dir);
  assert.match(r.stdout, /no counterexample/);
  assert.match(r.stdout, /^60 cases in /);
  assert.ok(!existsSync(join(dir, 'clean.db')), 'no empty recording');
  assert.deepEqual(listing(dir), []);
});

test('--guided: the coverage table is printed, the corpus is kept in the recording and the next campaign starts from it', TIMEOUT, async () => {
  const dir = caseDir();
  const first = await ok(['fuzz', '--guided', '--runs', '80', '--seed', '4', '--workers', '1', '--out', 'g.db'], dir);
  assert.match(first.stderr, /guided: seed 4, 1 worker, 80 runs, corpus of 0 from g\.db/);
  assert.match(first.stdout, /^coverage +reached +never reached$/m);
  assert.match(first.stdout, /^event kinds +\d+\/\d+ /m);
  assert.match(first.stdout, new RegExp(`^invariants broken +0/${INVARIANTS.length} +single-owner, `, 'm'));
  const corpus = Number(/; corpus (\d+)$/m.exec(first.stdout)?.[1]);
  assert.ok(corpus > 0, `corpus of the first campaign: ${first.stdout.split('\n')[0]}`);
  assert.deepEqual(await runRows('g.db', dir), [], 'a corpus, no runs');
  const second = await ok(['fuzz', '--guided', '--runs', '40', '--seed', '5', '--workers', '1', '--out', 'g.db', '--json'], dir);
  assert.match(second.stderr, new RegExp(`corpus of ${corpus} from g\\.db`));
  const report = JSON.parse(second.stdout) as { mode: string; corpus: number; coverage: { table: { family: string; reached: string[]; never: string[] | null }[] } };
  assert.equal(report.mode, 'guided');
  assert.ok(report.corpus >= corpus);
  const kinds = report.coverage.table.find((row) => row.family === 'event kinds');
  assert.ok(kinds && kinds.reached.includes('vm.exit') && kinds.never !== null);
});

test('--guided with a planted flaw: the shrunk counterexample is recorded, and verify is its reproduction', TIMEOUT, async () => {
  const dir = caseDir();
  const r = await ok(['fuzz', '--guided', '--flaw', 'stale-iotlb', '--runs', '400', '--seed', '1', '--workers', '1', '--out', 'gf.db', '--json'], dir, 1);
  const [c] = (JSON.parse(r.stdout) as { counterexamples: (Found & { mode: string })[] }).counterexamples;
  assert.equal(c.mode, 'guided');
  assert.match(c.finding, /^no-stale-translation:/);
  assert.equal(c.reproduce, `npx chronovisor verify gf.db --run ${c.run}`);
  const row = (await runRows('gf.db', dir)).find((x) => x.id === c.run);
  assert.match(row?.name ?? '', /^fuzz-secure-stale-iotlb-guided-seed1-case\d+$/);
  await ok(['verify', 'gf.db', '--run', String(c.run)], dir);
});

const BAD: [string[], RegExp][] = [
  [['--flaw', 'nope'], /--flaw nope: unknown flaw; flaws: no-scrub/],
  [['--profile', 'x'], /--profile/],
  [['--time', '10x'], /--time 10x: expected a duration/],
  [['--time', '1s', '--runs', '5'], /--time 1s --runs 5: give --time or --runs, not both/],
  [['--focus', 'nope'], /--focus nope: unknown action family nope; families: guest, dom0, wire, dma, msi, x86/],
  [['--path', '1:2'], /--path 1:2: .*--seed/],
  [['--workers', '0'], /--workers 0: expected a whole number >= 1/],
  [['--seed', '1', '--path', 'x'], /--path x: expected a fast-check path/],
  [['--scoreboard', '--flaw', 'no-scrub'], /--scoreboard: drop --flaw/],
  [['--guided', '--seed', '1', '--path', '3:1'], /--guided --path 3:1: a path replays a random case; a guided counterexample replays from its recording/],
];

test('bad arguments: exit 2, a message naming the argument, nothing written', TIMEOUT, async () => {
  await Promise.all(BAD.map(async ([extra, message]) => {
    const dir = caseDir();
    const args = ['fuzz', ...extra, '--out', 'x.db'];
    const r = await cli(args, dir);
    const what = describeResult(args, r);
    assert.equal(r.code, EXIT_USAGE, what);
    assert.equal(r.stdout, '', what);
    assert.match(r.stderr, message, what);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, what);
    assert.deepEqual(listing(dir), [], `nothing written\n${what}`);
  }));
});

test('the scoreboard: one JSON document, a row per planted flaw and one for the clean secure profile', TIMEOUT, async () => {
  const dir = caseDir();
  const args = ['fuzz', '--scoreboard', '--runs', '40', '--workers', '2', '--seed', '1', '--json'];
  const r = await cli(args, dir);
  assert.ok(r.code === 0 || r.code === 1, describeResult(args, r));
  const board = JSON.parse(r.stdout) as { ok: boolean; rows: { flaw: string; expected: boolean; found: boolean; runs: number; seconds: number; length: number | null }[] };
  assert.deepEqual(board.rows.map((row) => row.flaw), [...FLAWS, '(none: secure)']);
  for (const row of board.rows) {
    assert.equal(typeof row.found, 'boolean');
    assert.ok(Number.isInteger(row.runs) && row.runs >= 1 && row.runs <= 40, `runs of ${row.flaw}: ${row.runs}`);
    assert.ok(row.seconds >= 0, `seconds of ${row.flaw}`);
    assert.ok(row.found ? Number.isInteger(row.length) : row.length === null, `length of ${row.flaw}`);
  }
  // Exit 0 exactly when every flaw is found and the clean campaign finds nothing.
  assert.equal(board.ok, board.rows.every((row) => row.found === row.expected));
  assert.equal(r.code, board.ok ? 0 : 1);
  assert.deepEqual(listing(dir), []);
});
