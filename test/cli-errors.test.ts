/**
 * Bad input gets exit code 2, one clear message on stderr that names the file, the field
 * path or the argument, nothing on stdout, and no damage: recordings a failed command was
 * pointed at keep their exact bytes (database file and write-ahead log), and no stray file
 * appears.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../src/events/schema.ts';
import {
  DEMO_SCENARIO, cli, describeResult, fingerprint, listing, parseJsonLines, removeDir, tempDir, writeText,
  type CliResult,
} from './helpers/cli.ts';

const EXIT_USAGE = 2;

let root: string;
/** A good recording with two runs (tenants-secure, tenants-vanilla) that every case copies. */
let goodDb: string;
let goodRuns: { id: number; name: string; events: number; head: string; status: string }[];

before(async () => {
  root = tempDir('chronovisor-cli-errors');
  copyFileSync(DEMO_SCENARIO, join(root, 'tenants.yaml'));
  // The demo's x86 tenant runs a guest kernel the scenario names by relative path.
  cpSync(join(dirname(DEMO_SCENARIO), 'guests'), join(root, 'guests'), { recursive: true });
  for (const args of [
    ['run', 'tenants.yaml', '--out', 'good.db'],
    ['run', 'tenants.yaml', '--out', 'good.db', '--profile', 'vanilla'],
    ['verify', 'good.db'],
  ]) {
    const r = await cli(args, root);
    assert.equal(r.code, 0, describeResult(args, r));
  }
  goodDb = join(root, 'good.db');
  const runs = await cli(['runs', 'good.db', '--json'], root);
  assert.equal(runs.code, 0, describeResult(['runs'], runs));
  goodRuns = parseJsonLines(runs.stdout);
  assert.deepEqual(goodRuns.map((r) => [r.id, r.name, r.status]), [[1, 'tenants-secure', 'complete'], [2, 'tenants-vanilla', 'complete']]);
});

after(() => removeDir(root));

/** A private folder for one case, holding a copy of the good recording and the scenario. */
function caseDir(): string {
  const dir = mkdtempSync(join(root, 'case-'));
  copyFileSync(goodDb, join(dir, 'good.db'));
  copyFileSync(join(root, 'tenants.yaml'), join(dir, 'tenants.yaml'));
  cpSync(join(root, 'guests'), join(dir, 'guests'), { recursive: true });
  return dir;
}

/** Asserts a clean usage failure: exit 2, nothing on stdout, a message and no stack trace. */
function assertUsageError(args: string[], r: CliResult, ...patterns: (RegExp | string)[]): void {
  const what = describeResult(args, r);
  assert.equal(r.code, EXIT_USAGE, what);
  assert.equal(r.stdout, '', `nothing should go to stdout\n${what}`);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at .+:\d+:\d+\)?\n/, `no internal error or stack trace\n${what}`);
  for (const p of patterns) {
    if (typeof p === 'string') assert.ok(r.stderr.includes(p), `stderr should include ${JSON.stringify(p)}\n${what}`);
    else assert.match(r.stderr, p, what);
  }
}

/**
 * Runs a command that must fail with exit 2, checking that every file in `guarded` keeps
 * its bytes and that the folder gains no file (SQLite's own -wal/-shm aside for recordings
 * that are in WAL mode, whose log contents the fingerprint covers).
 */
async function failsUntouched(dir: string, args: string[], guarded: string[], ...patterns: (RegExp | string)[]): Promise<CliResult> {
  const before = guarded.map((name) => fingerprint(join(dir, name)));
  const filesBefore = listing(dir, true);
  const r = await cli(args, dir);
  assertUsageError(args, r, ...patterns);
  assert.deepEqual(guarded.map((name) => fingerprint(join(dir, name))), before, `the bytes of ${guarded.join(', ')} changed\n${describeResult(args, r)}`);
  assert.deepEqual(listing(dir, true), filesBefore, `files appeared or vanished\n${describeResult(args, r)}`);
  return r;
}

// ---- scenario files ----------------------------------------------------------------------

/** A valid scenario; each case below changes one thing in a copy of it. */
const VALID = `seed: 1
machine:
  memoryMiB: 4
  pcpus: 1
dom0:
  memoryKiB: 256
  actions:
    - { at: 2, op: foreign_read, domain: alice, gfn: 0 }
domains:
  - name: alice
    memoryKiB: 64
    guest:
      ops:
        - write: { gpa: 0x1000, text: "hi" }
        - repeat:
            times: 2
            ops:
              - read: { gpa: 0x1000, len: 2 }
              - yield
  - name: bob
    memoryKiB: 64
    guest:
      ops: [yield]
`;

function variant(from: string, to: string): string {
  assert.ok(VALID.includes(from), `the base scenario has no ${JSON.stringify(from)}`);
  return VALID.replace(from, to);
}

interface ScenarioCase {
  name: string;
  text: string;
  /** What stderr must say, beyond naming the file. */
  expect: (RegExp | string)[];
}

const SCENARIO_CASES: ScenarioCase[] = [
  {
    name: 'malformed YAML (bad indentation): file:line:col',
    text: variant('  memoryMiB: 4\n  pcpus: 1\n', '  memoryMiB: 4\n   pcpus: 1\n'),
    expect: [/^chronovisor: scenario\.yaml:4:\d+ malformed YAML/m],
  },
  {
    name: 'malformed YAML (unclosed flow sequence): file:line:col',
    text: variant('      ops: [yield]\n', '      ops: [yield\n'),
    expect: [/^chronovisor: scenario\.yaml:\d+:\d+ malformed YAML/m],
  },
  {
    name: 'unknown top-level field',
    text: `${VALID}colour: purple\n`,
    expect: ['scenario.yaml:', 'colour'],
  },
  {
    name: 'unknown field inside a domain',
    text: variant('  - name: bob\n    memoryKiB: 64\n', '  - name: bob\n    memoryKiB: 64\n    colour: purple\n'),
    expect: ['scenario.yaml: domains[1]', 'colour'],
  },
  {
    name: 'unknown op in a guest',
    text: variant('      ops: [yield]\n', '      ops: [yield, { fly: { to: moon } }]\n'),
    expect: ['scenario.yaml: domains[1].guest.ops[1]:', "'fly'"],
  },
  {
    name: 'unknown op inside a repeat',
    text: variant('              - yield\n', '              - teleport\n'),
    expect: ['scenario.yaml: domains[0].guest.ops[1].repeat.ops[1]:', "'teleport'"],
  },
  {
    name: 'mistyped field: a string where a number belongs',
    text: variant('  - name: alice\n    memoryKiB: 64\n', '  - name: alice\n    memoryKiB: "sixty-four"\n'),
    expect: ['scenario.yaml: domains[0].memoryKiB:', /number/],
  },
  {
    name: 'mistyped field inside an op',
    text: variant('read: { gpa: 0x1000, len: 2 }', 'read: { gpa: 0x1000, len: "two" }'),
    expect: ['scenario.yaml: domains[0].guest.ops[1].repeat.ops[0].read.len:', /number/],
  },
  {
    name: 'negative memoryKiB',
    text: variant('  - name: alice\n    memoryKiB: 64\n', '  - name: alice\n    memoryKiB: -64\n'),
    expect: ['scenario.yaml: domains[0].memoryKiB:'],
  },
  {
    name: 'memoryKiB not a multiple of 4',
    text: variant('  - name: bob\n    memoryKiB: 64\n', '  - name: bob\n    memoryKiB: 66\n'),
    expect: ['scenario.yaml: domains[1].memoryKiB:', /multiple of 4/],
  },
  {
    name: 'duplicate domain names',
    text: variant('  - name: bob\n', '  - name: alice\n'),
    expect: ['scenario.yaml: domains[1].name:', /duplicate/, "'alice'"],
  },
  {
    name: 'a dom0 action naming an unknown domain',
    text: variant('op: foreign_read, domain: alice', 'op: foreign_read, domain: mallory'),
    expect: ['scenario.yaml: dom0.actions[0].domain:', "'mallory'", /alice, bob/],
  },
  {
    name: 'an unknown flaw',
    text: variant('dom0:\n', 'flaws: [time-travel]\ndom0:\n'),
    expect: ['scenario.yaml: flaws[0]:', "'time-travel'"],
  },
  {
    name: 'total memory exceeding machine.memoryMiB',
    text: variant('  - name: alice\n    memoryKiB: 64\n', '  - name: alice\n    memoryKiB: 4096\n'),
    expect: ['scenario.yaml: machine.memoryMiB:', /\d+ KiB/],
  },
];

describe('scenario errors: exit 2, the file and the field path, the recording untouched', { concurrency: 2 }, () => {
  test('the base scenario the cases vary is itself valid', async () => {
    const dir = caseDir();
    writeText(dir, 'scenario.yaml', VALID);
    const r = await cli(['run', 'scenario.yaml', '--out', 'fresh.db'], dir);
    assert.equal(r.code, 0, describeResult(['run', 'scenario.yaml'], r));
  });

  for (const c of SCENARIO_CASES) {
    test(c.name, async () => {
      const dir = caseDir();
      writeText(dir, 'scenario.yaml', c.text);
      await failsUntouched(dir, ['run', 'scenario.yaml', '--out', 'good.db'], ['good.db'], ...c.expect);
    });
  }

  test('a bad scenario with the default --out creates no recording beside it', async () => {
    const dir = caseDir();
    writeText(dir, 'scenario.yaml', variant('  - name: bob\n    memoryKiB: 64\n', '  - name: bob\n    memoryKiB: 66\n'));
    await failsUntouched(dir, ['run', 'scenario.yaml'], [], 'scenario.yaml: domains[1].memoryKiB:');
    assert.equal(existsSync(join(dir, 'scenario.db')), false);
  });

  test('a missing scenario file', async () => {
    const dir = caseDir();
    await failsUntouched(dir, ['run', 'nosuch.yaml', '--out', 'good.db'], ['good.db'], 'nosuch.yaml', /no such scenario file/);
  });

  test('run BAD --out GOOD leaves the good recording byte-identical, listing the same runs, and verifying', async () => {
    const dir = caseDir();
    writeText(dir, 'scenario.yaml', variant('  - name: bob\n', '  - name: alice\n'));
    await failsUntouched(dir, ['run', 'scenario.yaml', '--out', 'good.db'], ['good.db'], 'scenario.yaml: domains[1].name:');
    const runs = await cli(['runs', 'good.db', '--json'], dir);
    assert.equal(runs.code, 0, describeResult(['runs'], runs));
    assert.deepEqual(parseJsonLines(runs.stdout), goodRuns);
    const verify = await cli(['verify', 'good.db'], dir);
    assert.equal(verify.code, 0, describeResult(['verify', 'good.db'], verify));
    assert.match(verify.stdout, /^ok +run 1 /m);
    assert.match(verify.stdout, /^ok +run 2 /m);
  });

  test('run GOOD --out GOOD --max-events 0 is refused before a run is added', async () => {
    const dir = caseDir();
    await failsUntouched(dir, ['run', 'tenants.yaml', '--out', 'good.db', '--max-events', '0'], ['good.db'], '--max-events 0');
  });

  test('run --out into a folder that does not exist', async () => {
    const dir = caseDir();
    await failsUntouched(dir, ['run', 'tenants.yaml', '--out', join('nodir', 'x.db')], [], 'nodir');
  });
});

// ---- files that are not (usable) recordings ----------------------------------------------

/** Readers and writers pointed at a database path; each must refuse it untouched. */
function commandsOn(db: string): string[][] {
  return [
    ['runs', db],
    ['verify', db],
    ['fork', db, '--run', '1', '--at', '0', '--set', 'profile=vanilla'],
    ['run', 'tenants.yaml', '--out', db],
  ];
}

interface BadDb {
  name: string;
  file: string;
  make: (path: string) => void;
  expect: (RegExp | string)[];
}

const BAD_DBS: BadDb[] = [
  {
    name: 'a plain text file',
    file: 'notes.db',
    make: (path) => writeFileSync(path, 'these are my notes, not a recording\n'),
    expect: ['notes.db: not a chronovisor recording'],
  },
  {
    name: 'an empty file',
    file: 'empty.db',
    make: (path) => writeFileSync(path, ''),
    expect: ['empty.db: not a chronovisor recording'],
  },
  {
    name: 'an SQLite database without chronovisor tables',
    file: 'foreign.db',
    make: (path) => {
      const db = new Database(path);
      db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL); INSERT INTO invoices (amount) VALUES (12.5), (99);');
      db.close();
    },
    expect: ['foreign.db: not a chronovisor recording'],
  },
  {
    name: 'a chronovisor recording from a newer schema (meta schema_version 99)',
    file: 'newer.db',
    make: (path) => {
      copyFileSync(goodDb, path);
      const db = new Database(path);
      db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
      db.close();
    },
    expect: [`newer.db: its events: recorded by format 99; this chronovisor reads ${SCHEMA_VERSION}: re-record it, or upgrade chronovisor`],
  },
  {
    name: 'a chronovisor recording from an older schema (meta schema_version 0)',
    file: 'older.db',
    make: (path) => {
      copyFileSync(goodDb, path);
      const db = new Database(path);
      db.prepare("UPDATE meta SET value = '0' WHERE key = 'schema_version'").run();
      db.close();
    },
    expect: [new RegExp(`older\\.db: its events: recorded by format 0; this chronovisor reads ${SCHEMA_VERSION}: re-record it\n$`)],
  },
];

describe('database files that are not usable recordings: exit 2, named, byte-identical afterwards', { concurrency: 2 }, () => {
  for (const bad of BAD_DBS) {
    // An empty file takes the foreign-database path; one reader and one writer suffice.
    const commands = commandsOn(bad.file).filter((args) => bad.file !== 'empty.db' || args[0] === 'runs' || args[0] === 'run');
    for (const args of commands) {
      test(`${bad.name}: ${args[0]}`, async () => {
        const dir = caseDir();
        bad.make(join(dir, bad.file));
        await failsUntouched(dir, args, [bad.file, 'good.db'], ...bad.expect);
        if (bad.file !== 'newer.db' && bad.file !== 'older.db') {
          assert.equal(existsSync(join(dir, `${bad.file}-wal`)), false, 'no write-ahead log should appear beside a foreign file');
          assert.equal(existsSync(join(dir, `${bad.file}-journal`)), false, 'no rollback journal should appear beside a foreign file');
        }
      });
    }
  }

  test('demo --out an SQLite database without chronovisor tables refuses it, like run does', async () => {
    const dir = caseDir();
    const foreign = BAD_DBS.find((b) => b.file === 'foreign.db')!;
    foreign.make(join(dir, foreign.file));
    await failsUntouched(dir, ['demo', '--out', foreign.file], [foreign.file], ...foreign.expect);
  });

  test('a recording that does not exist is not created by a reader', async () => {
    const dir = caseDir();
    for (const args of [['runs', 'nosuch.db'], ['verify', 'nosuch.db']]) {
      await failsUntouched(dir, args, [], 'nosuch.db', /no such recording/);
      assert.equal(existsSync(join(dir, 'nosuch.db')), false);
    }
  });
});

// ---- arguments ---------------------------------------------------------------------------

describe('bad arguments against a good recording: exit 2, the argument named, the recording untouched', { concurrency: 2 }, () => {
  const cases: { name: string; args: (events: number) => string[]; expect: (events: number) => (RegExp | string)[] }[] = [
    {
      name: 'log --run 42 (no such run id) lists the runs',
      args: () => ['log', 'good.db', '--run', '42'],
      expect: () => ["no run '42'", '1 (tenants-secure)', '2 (tenants-vanilla)', 'good.db'],
    },
    {
      name: 'verify --run with an unknown name lists the runs',
      args: () => ['verify', 'good.db', '--run', 'nobody'],
      expect: () => ["no run 'nobody'", '1 (tenants-secure)', '2 (tenants-vanilla)'],
    },
    {
      name: 'state --at one beyond the end',
      args: (events) => ['state', 'good.db', '--at', String(events + 1)],
      expect: (events) => [`--at ${events + 1}`, `${events} events`],
    },
    {
      name: 'state --at not a number',
      args: () => ['state', 'good.db', '--at', 'soon'],
      expect: () => ['--at soon'],
    },
    {
      name: 'log --kind nosuch',
      args: () => ['log', 'good.db', '--kind', 'nosuch'],
      expect: () => ['--kind nosuch', /no such event kind/],
    },
    {
      name: 'log --limit 0',
      args: () => ['log', 'good.db', '--limit', '0'],
      expect: () => ['--limit 0'],
    },
    {
      name: 'log --from not a seq',
      args: () => ['log', 'good.db', '--from', '-3'],
      expect: () => ['--from -3'],
    },
    {
      name: 'fork --set nonsense',
      args: () => ['fork', 'good.db', '--run', '1', '--at', '0', '--set', 'nonsense'],
      expect: () => ['--set nonsense', /KEY=VALUE/],
    },
    {
      name: 'fork --set profile=purple',
      args: () => ['fork', 'good.db', '--run', '1', '--at', '0', '--set', 'profile=purple'],
      expect: () => ['--set profile=purple', "'purple'"],
    },
    {
      name: 'fork --set with an unknown key',
      args: () => ['fork', 'good.db', '--run', '1', '--at', '0', '--set', 'gravity=off'],
      expect: () => ['--set gravity=off', "'gravity'"],
    },
    {
      name: 'fork --at beyond the end',
      args: (events) => ['fork', 'good.db', '--run', '2', '--at', String(events + 10), '--set', 'profile=secure'],
      expect: (events) => [`--at ${events + 10}`],
    },
    {
      name: 'fork --run of a run that does not exist',
      args: () => ['fork', 'good.db', '--run', '7', '--at', '0'],
      expect: () => ["no run '7'", '1 (tenants-secure)'],
    },
    {
      name: 'unknown command (commander usage error)',
      args: () => ['frobnicate', 'good.db'],
      expect: () => [/unknown command 'frobnicate'/],
    },
    {
      name: 'unknown option (commander usage error)',
      args: () => ['runs', 'good.db', '--colour'],
      expect: () => [/unknown option '--colour'/],
    },
    {
      name: 'missing required option (commander usage error)',
      args: () => ['state', 'good.db'],
      expect: () => [/--at/],
    },
    {
      name: 'missing argument (commander usage error)',
      args: () => ['diff', 'good.db', '1'],
      expect: () => [/runB/],
    },
    {
      name: 'run --profile outside its choices (commander usage error)',
      args: () => ['run', 'tenants.yaml', '--out', 'good.db', '--profile', 'purple'],
      expect: () => [/'purple'/, /secure, vanilla/],
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const dir = caseDir();
      const events = goodRuns[1].events;
      await failsUntouched(dir, c.args(events), ['good.db'], ...c.expect(events));
    });
  }

  test('state --at exactly the end is accepted (the boundary of the case above)', async () => {
    const dir = caseDir();
    const events = goodRuns[1].events;
    const r = await cli(['state', 'good.db', '--at', String(events), '--json'], dir);
    assert.equal(r.code, 0, describeResult(['state', '--at', String(events)], r));
    assert.equal((JSON.parse(r.stdout) as { seq: number }).seq, events);
  });

  test('a rejected fork adds no run', async () => {
    const dir = caseDir();
    await failsUntouched(dir, ['fork', 'good.db', '--run', '1', '--at', '0', '--set', 'profile=purple'], ['good.db'], '--set profile=purple');
    const runs = await cli(['runs', 'good.db', '--json'], dir);
    assert.equal(runs.code, 0, describeResult(['runs'], runs));
    assert.deepEqual(parseJsonLines(runs.stdout), goodRuns);
  });
});
