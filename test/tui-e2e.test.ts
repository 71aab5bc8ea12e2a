/**
 * The TUI end to end: the real program (`node bin/chronovisor tui DB`) in a real terminal
 * (tmux, 120x40), driven with send-keys and read back with capture-pane. It checks a step,
 * a rewind, a search, a fork (which opens the diff), a diff picked from the run list, that
 * quitting - by q, by Ctrl+C, by SIGTERM - leaves the terminal as it was, and the forensic
 * keys (explain, watch, origin, provenance) with and without a forensic index.
 *
 * The screen is polled until it shows what is expected; the limit is a safety net against a
 * hung program, and no assertion depends on how long anything takes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, recordTwoTenants } from './fixtures/tui/harness.ts';

const BIN = join(ROOT, 'bin/chronovisor');
const dir = mkdtempSync(join(tmpdir(), 'chronovisor-tui-e2e-'));
const socket = join(dir, 'tmux.sock');
const db = join(dir, 'two-tenants.db');
const SAFETY_LIMIT_MS = 60_000;

/** The child's environment: no CI marker (Ink draws only a last frame in CI), no test runner flags, no colour. */
function terminalEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TERM: 'xterm-256color' };
  for (const name of ['CI', 'CONTINUOUS_INTEGRATION', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'TMUX']) delete env[name];
  return env;
}

function tmux(...args: string[]): string {
  const result = spawnSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', env: terminalEnv() });
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `tmux ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

function tmuxMissing(): boolean {
  const result = spawnSync('tmux', ['-V'], { encoding: 'utf8' });
  return result.error !== undefined || result.status !== 0;
}

const screen = (session: string): string => tmux('capture-pane', '-p', '-t', session);
const pane = (session: string, format: string): string => tmux('display-message', '-p', '-t', session, format).trim();

async function waitFor(session: string, what: string, ready: (text: string) => boolean): Promise<string> {
  const started = Date.now();
  let text = '';
  while (Date.now() - started < SAFETY_LIMIT_MS) {
    text = screen(session);
    if (ready(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`the screen never showed ${what}; last screen:\n${text}`);
}

const shows = (session: string, needle: string | RegExp): Promise<string> =>
  waitFor(session, String(needle), (text) => (typeof needle === 'string' ? text.includes(needle) : needle.test(text)));

/**
 * A wrapper that runs the TUI in the pane's foreground (it needs the terminal), writes its
 * pid to a file first (the SIGTERM test needs it), prints how it ended, and keeps the pane
 * alive: tmux may drop the last output of a pane whose program has just exited, and does not
 * always know its status. kill-server ends the wait.
 */
const WRAPPER = `#!/bin/sh
pidfile=$1; shift
sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@"
echo "chronovisor exited with status $?"
exec sleep 3600
`;

/** Starts the TUI in a detached session of its own (`nodeArgs` go to node, before the program). */
function start(session: string, args: string[], nodeArgs: string[] = []): void {
  const wrapper = join(dir, 'run-tui.sh');
  writeFileSync(wrapper, WRAPPER);
  const command = ['sh', wrapper, join(dir, `${session}.pid`), process.execPath, ...nodeArgs, BIN, 'tui', ...args].map((a) => `'${a}'`).join(' ');
  tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', command);
}

const pidOf = (session: string): number => Number(readFileSync(join(dir, `${session}.pid`), 'utf8'));

function keys(session: string, ...names: string[]): void {
  for (const name of names) tmux('send-keys', '-t', session, name);
}

function typeText(session: string, text: string): void {
  tmux('send-keys', '-t', session, '-l', text);
}

/** `:SEQ` Enter, and waits until the header shows the position. */
async function jumpTo(session: string, seq: number): Promise<void> {
  keys(session, ':');
  typeText(session, String(seq));
  keys(session, 'Enter');
  await shows(session, `seq ${seq}/6001`);
}

async function exited(session: string): Promise<{ status: string; alternate: string; screen: string }> {
  const text = await shows(session, /chronovisor exited with status \d+/);
  return { status: /chronovisor exited with status (\d+)/.exec(text)![1], alternate: pane(session, '#{alternate_on}'), screen: text };
}

before(() => {
  if (tmuxMissing()) {
    assert.fail('tmux is not installed, and the TUI end-to-end test needs it: install it (apt-get install -y tmux; .ci/run does) and run the tests again');
  }
  recordTwoTenants(db, 6000);
});

after(() => {
  spawnSync('tmux', ['-S', socket, 'kill-server'], { env: terminalEnv() });
  rmSync(dir, { recursive: true, force: true });
});

test('tui in tmux: step, rewind, search, fork, diff, quit', async () => {
  const s = 'main';
  start(s, [db, '--run', '2']);
  await shows(s, 'seq 0/6001');
  assert.match(screen(s), /> +0 {2}machine\.boot profile=vanilla/);

  keys(s, 'l');
  await shows(s, 'seq 1/6001');
  keys(s, 'L');
  await shows(s, 'seq 1001/6001');
  keys(s, 'h');
  const rewound = await shows(s, 'seq 1000/6001');
  assert.match(rewound, /> +1000 {2}\S/, 'the selected row is event 1000');
  keys(s, 'g');
  await shows(s, 'seq 0/6001');

  keys(s, '/');
  typeText(s, 'violation');
  keys(s, 'Enter');
  const found = await shows(s, /violation at seq (\d+)/);
  const seq = Number(/violation at seq (\d+)/.exec(found)![1]);
  assert.match(found, new RegExp(`seq ${seq}/6001`));
  assert.match(found, new RegExp(`V> +${seq} {2}violation invariant=`));
  keys(s, 'n');
  await waitFor(s, 'the next violation', (text) => Number(/violation at seq (\d+)/.exec(text)?.[1] ?? seq) > seq);
  keys(s, 'N');
  await shows(s, `seq ${seq}/6001`);

  keys(s, 'f');
  await shows(s, `fork run 2 (two-tenants-vanilla) at seq ${seq}`);
  keys(s, 'Enter');
  const diff = await shows(s, 'forked: run 3');
  assert.match(diff, /diff {2}A: run 2 two-tenants-vanilla \(6001\) {2}B: run 3 two-tenants-vanilla\+fork@\d+ \(\d+\) {2}first divergence \d+/);
  assert.match(diff, /!> +\d+ {2}A /, 'the cursor is on a differing event');

  keys(s, 'Escape');
  await shows(s, /run 2 two-tenants-vanilla \[stopped\]/);
  keys(s, 'd');
  await shows(s, 'diff with which run?');
  keys(s, 'Enter');
  const picked = await shows(s, /B: run 1 two-tenants-secure/);
  assert.match(picked, /first divergence at seq \d+|the runs are identical/);

  keys(s, 'Escape', 'q');
  const end = await exited(s);
  assert.equal(end.status, '0', `q quits with status 0:\n${end.screen}`);
  assert.equal(end.alternate, '0', 'the terminal is back on its main screen');
});

test('tui in tmux: React runs its production build, which keeps nothing per render', async () => {
  // React's development build records a performance measure per component render and keeps
  // them: the heap of a session grew with every key. A module loaded before the program
  // reports, as the process exits, what the session left in the performance timeline.
  const report = join(dir, 'react-report.json');
  const reporter = join(dir, 'report-on-exit.mjs');
  writeFileSync(reporter, `import { writeFileSync } from 'node:fs';
process.on('exit', () => writeFileSync(${JSON.stringify(report)}, JSON.stringify({
  nodeEnv: process.env.NODE_ENV ?? null, measures: performance.getEntriesByType('measure').length,
})));
`);
  const s = 'react';
  start(s, [db, '--run', '2'], ['--import', reporter]);
  await shows(s, 'seq 0/6001');
  for (let i = 1; i <= 20; i++) {
    keys(s, 'l');
    await shows(s, `seq ${i}/6001`);
  }
  keys(s, 'q');
  assert.equal((await exited(s)).status, '0');
  assert.deepEqual(JSON.parse(readFileSync(report, 'utf8')), { nodeEnv: 'production', measures: 0 });
});

test('tui in tmux: Ctrl+C and SIGTERM also give the terminal back', async () => {
  start('ctrl-c', [db, '--run', '2']);
  await shows('ctrl-c', 'seq 0/6001');
  keys('ctrl-c', 'C-c');
  const byKey = await exited('ctrl-c');
  assert.equal(byKey.alternate, '0', byKey.screen);
  assert.equal(byKey.status, '0', byKey.screen);

  start('term', [db, '--run', '2']);
  await shows('term', 'seq 0/6001');
  process.kill(pidOf('term'), 'SIGTERM');
  const bySignal = await exited('term');
  assert.equal(bySignal.alternate, '0', bySignal.screen);
  assert.equal(bySignal.status, String(128 + 15), bySignal.screen);
});

test('tui in tmux: explain a violation, watch bytes, their origin and provenance; without an index, the fix', async () => {
  const bare = join(dir, 'forensics-bare.db');
  const indexed = join(dir, 'forensics-indexed.db');
  copyFileSync(db, bare);
  copyFileSync(db, indexed);
  const bareBytes = readFileSync(bare);
  const built = spawnSync(process.execPath, [BIN, 'index', indexed, '--run', '2'], { encoding: 'utf8', env: terminalEnv() });
  assert.equal(built.status, 0, built.stderr);

  start('bare', [bare, '--run', '2']);
  await shows('bare', 'seq 0/6001');
  keys('bare', ']');
  await shows('bare', /violation at seq \d+/);
  keys('bare', 'x');
  await shows('bare', `run 2 has no forensic index (x w o p need one): chronovisor index ${bare}`);
  keys('bare', 'q');
  assert.equal((await exited('bare')).status, '0');
  assert.ok(readFileSync(bare).equals(bareBytes), 'the recording without an index is left as it was');

  const s = 'forensics';
  start(s, [indexed, '--run', '2']);
  await shows(s, 'seq 0/6001');
  await jumpTo(s, 1044);
  keys(s, 'x');
  const explained = await shows(s, 'explain seq 1044');
  assert.match(explained, /chain: 144 -> 145 -> 980 -> 1042 -> 1044/);
  keys(s, 'Down', 'Enter');
  await shows(s, 'seq 1042/6001');
  keys(s, 'Escape');
  await waitFor(s, 'the pane closed', (text) => !text.includes('explain seq 1044'));

  keys(s, 'w');
  await shows(s, 'watching gpa:alice:0x1000/64 = mfn:321/64');
  keys(s, '(');
  await shows(s, /w mfn:321\/31 at seq 980: alice \(scripted\)/);
  assert.match(screen(s), /seq 980\/6001/);
  keys(s, ')');
  await shows(s, 'seq 1042/6001');

  keys(s, 'o');
  await shows(s, /origin of gpa:alice:0x1000\/64: seq 980 alice \(scripted\): scenario plant/);
  await jumpTo(s, 1042);
  keys(s, 'p');
  const traced = await shows(s, 'provenance of gpa:alice:0x1000/64 at seq 1042');
  assert.match(traced, /> #0 seq 980 alice \(scripted\): plants a canary -> mfn:321\/31 .*ORIGIN: scenario\s+plant/);

  keys(s, 'Escape', 'q');
  assert.equal((await exited(s)).status, '0');
});
