/**
 * Versioned formats: a run recorded in another version of any format (its compiled scenario,
 * the meaning of its events, its checkpoints; the events' schema is the file's, see
 * cli-errors.test.ts) is refused by every read command with exit 2 and the message
 * "recorded by format N; this chronovisor reads M: re-record it", never a verify failure,
 * and the file keeps its bytes; `runs` still lists it, marked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { SCHEMA_VERSION } from '../src/events/schema.ts';
import type { RunRow } from '../src/events/store.ts';
import { RUN_FORMATS, runFormatProblem } from '../src/replay/formats.ts';
import { DEMO_SCENARIO, cli, describeResult, fingerprint, parseJsonLines, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

let root: string;
before(async () => {
  root = tempDir('chronovisor-formats');
  copyFileSync(DEMO_SCENARIO, join(root, 'tenants.yaml'));
  cpSync(join(dirname(DEMO_SCENARIO), 'guests'), join(root, 'guests'), { recursive: true });
  for (const args of [['run', 'tenants.yaml', '--out', 'good.db'], ['run', 'tenants.yaml', '--out', 'good.db', '--profile', 'vanilla']]) {
    const r = await cli(args, root);
    assert.equal(r.code, 0, describeResult(args, r));
  }
});
after(() => removeDir(root));

/** A copy of the good recording whose run 1 says it was recorded in `formats`. */
function bumped(edit: (db: Database.Database) => void): string {
  const dir = mkdtempSync(join(root, 'case-'));
  copyFileSync(join(root, 'good.db'), join(dir, 'good.db'));
  copyFileSync(join(root, 'tenants.yaml'), join(dir, 'tenants.yaml'));
  cpSync(join(root, 'guests'), join(dir, 'guests'), { recursive: true });
  const db = new Database(join(dir, 'good.db'));
  edit(db);
  db.close();
  return dir;
}
const setFormat = (name: string, version: number) => (db: Database.Database): void => {
  db.prepare('UPDATE runs SET formats = ? WHERE id = 1').run(JSON.stringify({ ...RUN_FORMATS, [name]: version }));
};

const LABELS: Record<string, string> = {
  scenario: 'its compiled scenario',
  machine: 'the meaning of its events (what the machine decides and folds)',
  checkpoint: 'its checkpoints',
};
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The whole of stderr: the run, what differs, and the sentence the issue asks for. */
const refusal = (label: string, recorded: number, reads: number): RegExp => new RegExp(
  `^chronovisor: good\\.db: run 1 \\(tenants-secure\\): ${escape(label)}: recorded by format ${recorded}; this chronovisor reads ${reads}: re-record it${recorded > reads ? ', or upgrade chronovisor' : ''}\\n$`);

async function refused(dir: string, args: string[], message: RegExp): Promise<CliResult> {
  const before = fingerprint(join(dir, 'good.db'));
  const r = await cli(args, dir);
  const what = describeResult(args, r);
  assert.equal(r.code, 2, what);
  assert.equal(r.stdout, '', what);
  assert.match(r.stderr, message, what);
  assert.deepEqual(fingerprint(join(dir, 'good.db')), before, `the recording changed\n${what}`);
  return r;
}

const READ_COMMANDS: string[][] = [
  ['log', 'good.db', '--run', '1', '--limit', '3'],
  ['state', 'good.db', '--run', '1', '--at', 'end'],
  ['verify', 'good.db'],
  ['verify', 'good.db', '--run', '1'],
  ['diff', 'good.db', '1', '2'],
  ['diff', 'good.db', '2', '1'],
  ['fork', 'good.db', '--run', '1', '--at', '10', '--set', 'profile=vanilla'],
  ['export', 'pcap', 'good.db', '--run', '1', '--out', 'x.pcap'],
  ['tui', 'good.db', '--run', '1'],
];

describe('a run whose machine format is newer is refused by every read command', { concurrency: 2 }, () => {
  const newer = RUN_FORMATS.machine + 1;
  for (const args of READ_COMMANDS) {
    test(args.join(' '), async () => {
      await refused(bumped(setFormat('machine', newer)), args, refusal(LABELS.machine, newer, RUN_FORMATS.machine));
    });
  }

  test('a fork of such a run is refused too, naming the parent', async () => {
    const dir = bumped((db) => {
      setFormat('machine', newer)(db);
      // Run 2 as a fork of run 1, as a fork recorded by that other chronovisor would be.
      db.prepare('UPDATE runs SET parent_run = 1, fork_seq = 0 WHERE id = 2').run();
    });
    await refused(dir, ['log', 'good.db', '--run', '2', '--limit', '1'],
      /^chronovisor: good\.db: run 1 \(tenants-secure\) \(the parent of run 2\): the meaning of its events .*: recorded by format 2; this chronovisor reads 1: re-record it, or upgrade chronovisor\n$/);
  });

  test('runs lists it, marked, and the readable run unmarked (exit 0)', async () => {
    const dir = bumped(setFormat('machine', newer));
    const text = await cli(['runs', 'good.db'], dir);
    assert.equal(text.code, 0, describeResult(['runs'], text));
    const lines = text.stdout.trim().split('\n');
    assert.equal(lines.length, 3, text.stdout);
    assert.match(lines[1], /tenants-secure .* unreadable: the meaning of its events .*: recorded by format 2; this chronovisor reads 1: re-record it, or upgrade chronovisor$/);
    assert.doesNotMatch(lines[2], /unreadable/);
    const json = await cli(['runs', 'good.db', '--json'], dir);
    const runs = parseJsonLines<{ id: number; formats: Record<string, number>; unreadable: string | null }>(json.stdout);
    assert.deepEqual(runs.map((r) => [r.id, r.formats.machine, r.unreadable === null]), [[1, newer, false], [2, RUN_FORMATS.machine, true]]);
  });
});

describe('every format, older and newer: verify refuses the run instead of failing it', { concurrency: 2 }, () => {
  for (const name of Object.keys(RUN_FORMATS)) {
    for (const recorded of [RUN_FORMATS[name] - 1, RUN_FORMATS[name] + 1]) {
      test(`${name} format ${recorded}`, async () => {
        await refused(bumped(setFormat(name, recorded)), ['verify', 'good.db', '--run', '1'], refusal(LABELS[name], recorded, RUN_FORMATS[name]));
      });
    }
  }

  test('a recording made before runs kept their formats: its runs are format 0, a new run is added beside them', async () => {
    const dir = bumped((db) => db.exec('ALTER TABLE runs DROP COLUMN formats'));
    await refused(dir, ['verify', 'good.db', '--run', '2'], /^chronovisor: good\.db: run 2 \(tenants-vanilla\): its compiled scenario: recorded by format 0; this chronovisor reads 1: re-record it\n$/);
    const added = await cli(['run', 'tenants.yaml', '--out', 'good.db', '--name', 'again'], dir);
    assert.equal(added.code, 0, describeResult(['run'], added));
    const verified = await cli(['verify', 'good.db', '--run', 'again'], dir);
    assert.equal(verified.code, 0, describeResult(['verify'], verified));
  });
});

test('a damaged formats field is named, exit 2, by runs and by a read command', async () => {
  const dir = bumped((db) => db.prepare("UPDATE runs SET formats = 'not json' WHERE id = 1").run());
  for (const args of [['runs', 'good.db'], ['log', 'good.db', '--limit', '1']]) {
    await refused(dir, args, /^chronovisor: good\.db: run 1: its formats field \("not json"\) is damaged; it should be a JSON object of versions\n$/);
  }
});

test('runFormatProblem: none exactly when every format is this chronovisor\'s; else the first that differs, with both numbers', () => {
  const names = Object.keys(RUN_FORMATS);
  const version = fc.integer({ min: 0, max: 5 });
  const formats = fc.record(Object.fromEntries(names.map((n) => [n, fc.option(version, { nil: undefined })])) as Record<string, fc.Arbitrary<number | undefined>>);
  fc.assert(fc.property(formats, fc.option(version, { nil: undefined }), (recorded, events) => {
    const run = { schemaVersion: events ?? SCHEMA_VERSION, formats: Object.fromEntries(Object.entries(recorded).filter(([, v]) => v !== undefined)) } as unknown as RunRow;
    const problem = runFormatProblem(run);
    const eventsDiffer = run.schemaVersion !== SCHEMA_VERSION;
    const first = names.find((n) => (recorded[n] ?? 0) !== RUN_FORMATS[n]);
    if (!eventsDiffer && first === undefined) {
      assert.equal(problem, undefined);
      return;
    }
    const [label, was, reads] = eventsDiffer ? ['its events', run.schemaVersion, SCHEMA_VERSION] : [LABELS[first!], recorded[first!] ?? 0, RUN_FORMATS[first!]];
    assert.equal(problem, `${label}: recorded by format ${was}; this chronovisor reads ${reads}: re-record it${was > reads ? ', or upgrade chronovisor' : ''}`);
  }));
});
