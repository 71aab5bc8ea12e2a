/**
 * Every read command on damaged recordings. One scenario is recorded once (about 21k events:
 * six chunks, several checkpoints) and forked; each kind of damage is made on a copy with
 * better-sqlite3, and every read command is pointed at the damaged part: log, state, runs,
 * diff, fork, export pcap, jsonl and perfetto, and the TUI's start-up (in-process with its
 * controller, and the real program in tmux).
 *
 * A command that needs the damaged part exits 2 with one message naming the recording, the
 * run, the seq where it applies and what is damaged, and pointing to verify; never exit 3,
 * an internal error, a stack trace or a hang (the harness kills a child after two minutes,
 * which fails the test). A damaged run record makes `runs` list it as damaged and exit 1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { unpack } from 'msgpackr';
import { InputError } from '../src/events/errors.ts';
import { CHUNK_EVENTS, RecordingStore } from '../src/events/store.ts';
import { TuiController } from '../src/tui/controller.ts';
import { ManualScheduler } from '../src/tui/scheduler.ts';
import { PLAIN } from '../src/tui/theme.ts';
import { BIN, cli, describeResult, fingerprint, loopScenario, removeDir, tempDir, writeText } from './helpers/cli.ts';
import { testServices } from './fixtures/tui/harness.ts';

let root: string;
let intact: string;
let chunks: { first_seq: number; count: number }[];
let checkpoints: number[];
let events: number;
/** The chunk the damage goes in (run 1's third), and a seq in the middle of it. */
let target: { first: number; middle: number };

before(async () => {
  root = tempDir('chronovisor-damaged');
  writeText(root, 'long.yaml', loopScenario({ seed: 7, times: 2600 }));
  const run = await cli(['run', 'long.yaml', '--out', 'base.db'], root);
  assert.equal(run.code, 0, describeResult(['run'], run));
  intact = join(root, 'base.db');
  const db = new Database(intact, { readonly: true });
  chunks = db.prepare('SELECT first_seq, count FROM chunks WHERE run = 1 ORDER BY first_seq').all() as typeof chunks;
  checkpoints = (db.prepare('SELECT seq FROM checkpoints WHERE run = 1 ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq);
  events = (db.prepare('SELECT event_count FROM runs WHERE id = 1').get() as { event_count: number }).event_count;
  db.close();
  assert.ok(chunks.length >= 5 && checkpoints.length >= 3, `${chunks.length} chunks, checkpoints ${checkpoints}`);
  target = { first: chunks[2].first_seq, middle: chunks[2].first_seq + CHUNK_EVENTS / 2 };
  // Run 2 branches after the damaged chunk: its prefix crosses it.
  const fork = await cli(['fork', 'base.db', '--run', '1', '--at', String(chunks[3].first_seq + 50), '--set', 'quantum=2', '--events', '2000'], root);
  assert.equal(fork.code, 0, describeResult(['fork'], fork));
});

after(() => removeDir(root));

function edit(path: string, change: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    change(db);
  } finally {
    db.close();
  }
}

/** The hash of the scenario blob every checkpoint names (a page of the page store). */
function configPageHash(db: Database.Database): Buffer {
  const row = db.prepare('SELECT state FROM checkpoints WHERE run = 1 AND seq = 0').get() as { state: Buffer };
  return Buffer.from((unpack(inflateRawSync(row.state)) as { config: Uint8Array }).config);
}

interface Damage {
  name: string;
  apply: (db: Database.Database) => void;
  /** What the message says is damaged (after "run 1 is damaged ..."). */
  says: RegExp;
  /** The commands (of COMMANDS) that never need the damaged part: they may succeed. */
  mayPass: string[];
}

const DAMAGES: Damage[] = [
  {
    name: 'the stored event count raised by 5000 (reading past the last chunk used to spin forever)',
    apply: (db) => db.prepare('UPDATE runs SET event_count = event_count + 5000 WHERE id = 1').run(),
    says: /at seq \d+: the run says it holds \d+ events, but its chunks end at seq \d+/,
    // These read the run up to a point before its end.
    mayPass: ['fork after the damaged chunk', 'state --at a seq in the damaged chunk'],
  },
  {
    name: 'a middle chunk deleted',
    apply: (db) => db.prepare('DELETE FROM chunks WHERE run = 1 AND first_seq = ?').run(target.first),
    says: /at seq \d+: the chunk of events \d+\.\.\d+ is missing/,
    // The end is folded from the last checkpoint, after the damaged chunk.
    mayPass: ['state --at end'],
  },
  {
    name: 'one byte of a middle chunk flipped (it still inflates and decodes)',
    apply: (db) => {
      const row = db.prepare('SELECT bytes FROM chunks WHERE run = 1 AND first_seq = ?').get(target.first) as { bytes: Buffer };
      const raw = inflateRawSync(row.bytes);
      // A byte of a mem.write's stored data: still a valid event, only its content changes.
      raw[raw.indexOf(Buffer.from([0xde, 0xad, 0xbe, 0xef]), raw.length >> 1)] ^= 0x01;
      db.prepare('UPDATE chunks SET bytes = ? WHERE run = 1 AND first_seq = ?').run(deflateRawSync(raw), target.first);
    },
    says: /at seq \d+: the chunk of events \d+\.\.\d+ does not match its hash/,
    // diff skips the chunks the runs share by their recorded hashes, without reading them.
    mayPass: ['state --at end', 'diff of the run and its fork'],
  },
  {
    name: 'one byte of a page flipped (the scenario blob every checkpoint names)',
    apply: (db) => {
      const hash = configPageHash(db);
      const row = db.prepare('SELECT bytes FROM pages WHERE hash = ?').get(hash) as { bytes: Buffer };
      const bytes = Buffer.from(row.bytes);
      bytes[bytes.length >> 1] ^= 0x01;
      db.prepare('UPDATE pages SET bytes = ? WHERE hash = ?').run(bytes, hash);
    },
    says: /at seq \d+: the checkpoint at seq \d+ cannot be loaded: page [0-9a-f]{16} is damaged: its bytes no longer hash to its name/,
    // pcap loads a checkpoint only for the tick of a frame, and this scenario has none.
    mayPass: ['export pcap'],
  },
  {
    name: 'every checkpoint replaced by bytes that are not a state',
    apply: (db) => db.prepare('UPDATE checkpoints SET state = ? WHERE run = 1').run(deflateRawSync(Buffer.from('not a machine state'))),
    says: /at seq \d+: the checkpoint at seq \d+ cannot be loaded: /,
    mayPass: ['export pcap'],
  },
  {
    name: 'the run record\'s summary is not JSON',
    apply: (db) => db.prepare("UPDATE runs SET summary = 'garbage' WHERE id = 1").run(),
    says: /: its record's summary holds "garbage", not a JSON object/,
    mayPass: [],
  },
];

/** A copy of the intact recording with `damage` made, in a folder of its own. */
function damaged(damage: Damage): string {
  const dir = mkdtempSync(join(root, 'case-'));
  copyFileSync(intact, join(dir, 'r.db'));
  edit(join(dir, 'r.db'), damage.apply);
  return dir;
}

/** Each read command, aimed at the damaged chunk (the damages elsewhere are met on the way). */
const COMMANDS = (): [string, string[]][] => [
  ['log', ['log', 'r.db', '--run', '1', '--from', String(target.first - 10), '--to', String(events + 10)]],
  ['log --json', ['log', 'r.db', '--run', '1', '--from', String(target.first - 10), '--json']],
  ['state --at a seq in the damaged chunk', ['state', 'r.db', '--run', '1', '--at', String(target.middle)]],
  ['state --at end', ['state', 'r.db', '--run', '1', '--at', 'end']],
  ['diff of the run and its fork', ['diff', 'r.db', '1', '2']],
  ['fork after the damaged chunk', ['fork', 'r.db', '--run', '1', '--at', String(chunks[4].first_seq), '--set', 'quantum=3']],
  ['export pcap', ['export', 'pcap', 'r.db', '--run', '1', '--out', 'x.pcap', '--at', 'all']],
  ['export jsonl', ['export', 'jsonl', 'r.db', '--run', '1', '--out', 'x.jsonl']],
  ['export perfetto', ['export', 'perfetto', 'r.db', '--run', '1', '--out', 'x.json']],
];

function assertDamageReported(args: string[], r: { code: number | null; stdout: string; stderr: string; signal: NodeJS.Signals | null }, says: RegExp): void {
  const what = describeResult(args, r as never);
  assert.equal(r.signal, null, `no hang (killed by ${r.signal})\n${what}`);
  assert.equal(r.code, 2, what);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, what);
  const message = r.stderr.split('\n').find((l) => l.startsWith('chronovisor: '));
  assert.ok(message, what);
  assert.match(message, /^chronovisor: r\.db: run [12] is damaged/, what);
  assert.match(message, says, what);
  assert.match(message, /'chronovisor verify r\.db --run [12]' checks all of it$/, what);
}

describe('read commands on damaged recordings', { concurrency: 2 }, () => {
  for (const damage of DAMAGES) {
    test(damage.name, async (t) => {
      const dir = damaged(damage);
      const before = fingerprint(join(dir, 'r.db'));
      let forked = false;
      for (const [name, args] of COMMANDS()) {
        const r = await cli(args, dir);
        if (r.code === 0 && damage.mayPass.includes(name)) {
          t.diagnostic(`${name}: needs no damaged part, succeeded`);
          forked ||= args[0] === 'fork';
          continue;
        }
        assertDamageReported(args, r, damage.says);
      }
      const runs = await cli(['runs', 'r.db'], dir);
      const recordDamaged = /record/.test(damage.name);
      assert.equal(runs.code, recordDamaged ? 1 : 0, describeResult(['runs'], runs));
      assert.doesNotMatch(runs.stderr, /internal error|\n\s+at /);
      assert.match(runs.stdout, recordDamaged ? /^ +1 +\(its record is damaged\)\n +2 +long-secure\+fork/m : /^ +1 +long-secure +- +complete/m);
      // A fork that succeeded added its run; otherwise nothing may have changed the file.
      if (!forked) assert.deepEqual(fingerprint(join(dir, 'r.db')), before, 'no command that failed, nor any reader, changed the recording');
    });
  }

  test('control: on the intact recording every one of those commands succeeds', async () => {
    const dir = mkdtempSync(join(root, 'case-'));
    copyFileSync(intact, join(dir, 'r.db'));
    for (const [, args] of [...COMMANDS(), ['runs', ['runs', 'r.db']] as [string, string[]]]) {
      const r = await cli(args, dir);
      assert.equal(r.code, 0, describeResult(args, r));
    }
  });
});

describe('tui start-up on damaged recordings', () => {
  /** The controller as `tui` builds it, with every background slice run; the error if it cannot start. */
  function start(dir: string): { view?: ReturnType<TuiController['getSnapshot']>; error?: unknown } {
    const path = join(dir, 'r.db');
    const store = RecordingStore.open(path, { readonly: true });
    try {
      const scheduler = new ManualScheduler();
      const controller = new TuiController({ store, run: store.run(1), services: testServices(path), scheduler, theme: PLAIN, size: { columns: 120, rows: 40 } });
      scheduler.runAll();
      const view = controller.getSnapshot();
      controller.dispose();
      return { view };
    } catch (error) {
      return { error };
    } finally {
      store.close();
    }
  }

  for (const damage of DAMAGES) {
    test(`${damage.name}: starts and says where indexing stopped, or refuses to start with the message`, () => {
      const { view, error } = start(damaged(damage));
      if (error !== undefined) {
        assert.ok(error instanceof InputError, `a damaged recording is bad input, not a bug: ${String((error as Error).stack)}`);
        assert.match(error.message, damage.says);
        return;
      }
      // The chunk damages are met by the background index; the others are not read to start.
      if (/chunk|count/.test(damage.name)) {
        assert.match(view!.status.map((s) => s.text).join(''), /indexing stopped: .*run 1 is damaged at seq \d+/);
        assert.match(view!.tabs.map((s) => s.text).join(''), /indexed to seq \d+: the run is damaged there/);
      }
    });
  }

  test('the real program in a terminal (tmux): a missing chunk shows on the status line, q quits with 0; a damaged page stops it before the screen is taken, exit 2', { skip: spawnSync('tmux', ['-V']).error ? 'tmux is not installed' : false }, async () => {
    const socket = join(root, 'tmux.sock');
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TERM: 'xterm-256color' };
    for (const name of ['CI', 'CONTINUOUS_INTEGRATION', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'TMUX']) delete env[name];
    const tmux = (...args: string[]): string => spawnSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', env }).stdout;
    const screenShows = async (session: string, pattern: RegExp): Promise<string> => {
      for (let i = 0; i < 600; i++) {
        const text = tmux('capture-pane', '-p', '-t', session);
        if (pattern.test(text)) return text;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(`the screen never showed ${pattern}:\n${tmux('capture-pane', '-p', '-t', session)}`);
    };
    const wrapper = writeText(root, 'tui.sh', '#!/bin/sh\ncd "$1"; shift\n"$@"\necho "chronovisor exited with status $?"\nexec sleep 3600\n');
    const open = (session: string, dir: string): void => {
      tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', ['sh', wrapper, dir, process.execPath, BIN, 'tui', 'r.db', '--run', '1'].map((a) => `'${a}'`).join(' '));
    };
    try {
      open('chunk', damaged(DAMAGES[1]));
      await screenShows('chunk', /indexing stopped: .*run 1 is damaged/);
      tmux('send-keys', '-t', 'chunk', 'q');
      await screenShows('chunk', /chronovisor exited with status 0/);

      open('page', damaged(DAMAGES[3]));
      const text = await screenShows('page', /chronovisor exited with status \d+/);
      assert.match(text, /chronovisor exited with status 2/);
      assert.match(text.replace(/\n/g, ''), /run 1 is damaged at seq 0: the checkpoint at seq 0 cannot be loaded: page/);
      assert.doesNotMatch(text, /internal error/);
    } finally {
      spawnSync('tmux', ['-S', socket, 'kill-server'], { env });
    }
  });
});
