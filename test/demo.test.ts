/**
 * `chronovisor demo` end to end, through the real command line: it records the bundled
 * scenario in both profiles; vanilla leaks in exactly the paper's three ways, secure not at all.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'chronovisor-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/chronovisor', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const jsonLines = (text: string): Record<string, unknown>[] =>
  text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Record<string, unknown>);

test('demo: vanilla leaks memory (canary-confined, dom0-no-plaintext, scrub-between-owners) and packets (dom0-no-plaintext, net-isolation); secure violates nothing', () => {
  const db = join(dir, 'demo.db');
  const demo = cli('demo', '--out', db);
  assert.equal(demo.status, 0, `demo failed:\n${demo.stdout}\n${demo.stderr}`);

  const runs = cli('runs', db, '--json');
  assert.equal(runs.status, 0, runs.stderr);
  const rows = jsonLines(runs.stdout);
  const byName = new Map(rows.map((r) => [String(r.name), r]));
  assert.deepEqual([...byName.keys()].sort(), ['network-secure', 'network-vanilla', 'two-tenants-secure', 'two-tenants-vanilla'], `runs: ${runs.stdout}`);
  for (const row of rows) assert.equal(row.status, 'complete');

  const violated = (run: unknown): Set<string> => {
    const log = cli('log', db, '--run', String(run), '--kind', 'violation', '--json');
    assert.equal(log.status, 0, log.stderr);
    const events = jsonLines(log.stdout);
    for (const e of events) assert.equal(e.kind, 'violation');
    return new Set(events.map((e) => String(e.invariant)));
  };
  const vanilla = byName.get('two-tenants-vanilla')!;
  const secure = byName.get('two-tenants-secure')!;
  assert.deepEqual([...violated(vanilla.id)].sort(), ['canary-confined', 'dom0-no-plaintext', 'scrub-between-owners']);
  assert.deepEqual([...violated(secure.id)], []);
  assert.equal(secure.violations, 0);
  assert.ok(Number(vanilla.violations) >= 3);
  // The I/O demo: dom0's netback sees every packet in plaintext and lets mallory pass as alice.
  assert.deepEqual([...violated(byName.get('network-vanilla')!.id)].sort(), ['dom0-no-plaintext', 'net-isolation']);
  assert.deepEqual([...violated(byName.get('network-secure')!.id)], []);
  // dom0's backend crashes half way: vanilla's I/O dies with it, SIOM's does not.
  const replies = (run: unknown): number => {
    const log = cli('log', db, '--run', String(run), '--kind', 'hypercall', '--domain', 'alice', '--json');
    assert.equal(log.status, 0, log.stderr);
    const summary = jsonLines(log.stdout).map((e) => String(e.text)).find((text) => / of 16 replies/.test(text));
    assert.ok(summary !== undefined, 'the pinger reports its replies');
    return Number(/(\d+) of 16 replies/.exec(summary)![1]);
  };
  assert.equal(replies(byName.get('network-secure')!.id), 16);
  assert.ok(replies(byName.get('network-vanilla')!.id) < 16, 'vanilla loses replies once dom0 crashed');
});

test('demo replaces a recording of another format at --out (an upgraded checkout\'s npm start), and refuses a file that is not a recording', () => {
  const db = join(dir, 'old-format.db');
  const first = cli('run', 'recordings/kernel.yaml', '--out', db, '--max-events', '500');
  assert.equal(first.status, 0, first.stderr);
  const sqlite = new Database(db);
  sqlite.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
  sqlite.close();
  const refused = cli('runs', db);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /recorded by format 1; this chronovisor reads \d+: re-record it/);
  const demo = cli('demo', '--out', db);
  assert.equal(demo.status, 0, demo.stderr);
  assert.equal(jsonLines(cli('runs', db, '--json').stdout).length, 4);
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not a recording\n');
  const foreign = cli('demo', '--out', text);
  assert.equal(foreign.status, 2);
  assert.equal(readFileSync(text, 'utf8'), 'not a recording\n');
});
