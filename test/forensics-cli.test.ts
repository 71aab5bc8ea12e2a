/**
 * The forensic commands end to end, through the real command line, on the bundled demo
 * scenarios: the questions the forensics issue asks are answered by one command each, the
 * index is built on first use (and by `index`), and bad input is a clean exit 2 that leaves
 * the recording as it was.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fileURLToPath } from 'node:url';
import { BIN, childEnv, cli, collect, describeResult, fingerprint, parseJsonLines, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

const RECORDINGS = fileURLToPath(new URL('../recordings/', import.meta.url));

let root: string;
/** Runs 1 and 2: two-tenants secure and vanilla; runs 3 and 4: network secure and vanilla (the demo's order). */
let demo: string;
/** The same recording, never indexed. */
let pristine: string;

async function ok(args: string[], cwd = root): Promise<CliResult> {
  const r = await cli(args, cwd);
  assert.equal(r.code, 0, describeResult(args, r));
  return r;
}

before(async () => {
  root = tempDir('chronovisor-forensics');
  for (const file of ['two-tenants.yaml', 'network.yaml']) copyFileSync(join(RECORDINGS, file), join(root, file));
  cpSync(join(RECORDINGS, 'guests'), join(root, 'guests'), { recursive: true });
  for (const args of [
    ['run', 'two-tenants.yaml', '--out', 'demo.db', '--name', 'two-tenants-secure'],
    ['run', 'two-tenants.yaml', '--out', 'demo.db', '--profile', 'vanilla', '--name', 'two-tenants-vanilla'],
    ['run', 'network.yaml', '--out', 'demo.db', '--name', 'network-secure'],
    ['run', 'network.yaml', '--out', 'demo.db', '--profile', 'vanilla', '--name', 'network-vanilla'],
  ]) await ok(args);
  demo = join(root, 'demo.db');
  pristine = join(root, 'pristine.db');
  copyFileSync(demo, pristine);
});

after(() => removeDir(root));

test('who-wrote mfn:321/64 at seq 1042 of run 2 names alice\'s write at seq 980 (the index is built on first use)', async () => {
  const r = await ok(['who-wrote', demo, 'mfn:321/64', '--at', '1042', '--run', '2']);
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^who wrote mfn:321\/64 before seq 1042 \(run 2 two-tenants-vanilla\):/);
  assert.match(lines[1], /^ {2}mfn:321\/31 +seq 980: alice \(scripted\), plants a canary at gpa 0x1000: "alice: card 4929-1234-56"/);
  assert.match(lines[2], /^ {2}mfn:321\+0x1f\/33 +never written since the recording began/);
  const json = JSON.parse((await ok(['who-wrote', demo, 'gpa:alice:0x1000/64', '--at', '1042', '--run', '2', '--json'])).stdout);
  assert.equal(json.runs[0].writer.seq, 980);
  assert.equal(json.runs[0].bytes, 'mfn:321/31');
  assert.equal(json.runs[1].writer, undefined);
});

test('history lists every access of a frame with its actor, whichever name it is given', async () => {
  const byFrame = await ok(['history', demo, 'mfn:321/64', '--run', '2', '--to', '1100', '--json']);
  const byGpa = await ok(['history', demo, 'gpa:alice:0x1000/64', '--run', '2', '--to', '1100', '--at', '1000', '--json']);
  assert.equal(byGpa.stdout, byFrame.stdout, 'the owner\'s gpa and the frame give the same history');
  const rows = parseJsonLines<{ seq: number; access: string; actor: string }>(byFrame.stdout);
  assert.deepEqual(rows.map((r) => [r.seq, r.access, r.actor]), [
    [144, 'own', 'SMM'], [145, 'map', 'Xen'], [980, 'w', 'alice (scripted)'], [1042, 'r', 'dom0'],
  ]);
  // erin's kernel starts at 0x1000 with cli: the one fetch of that byte, found by re-executing the run.
  const x86 = parseJsonLines<{ seq: number; access: string; actor: string; what: string }>((await ok(['history', demo, 'linear:erin.v0:0x1000/1', '--run', '2', '--at', '1100', '--kind', 'x', '--json'])).stdout);
  assert.deepEqual(x86.map((r) => [r.seq, r.access, r.actor, r.what]), [[995, 'x', 'erin.v0', 'cli']]);
});

test('provenance of gpa:bob:0x14000/62 at seq 69848 of run 4 reaches alice\'s instructions through netback\'s copies and the switch', async () => {
  const r = await ok(['provenance', demo, 'gpa:bob:0x14000/62', '--at', '69848', '--run', '4', '--json']);
  const result = JSON.parse(r.stdout) as { roots: number[]; hops: { id: number; seq: number; actor: string; what: string; transformation: string; origin?: string; from: number[] }[]; origins: number[] };
  const hops = result.hops;
  // The first hop is the write of bob's buffer: dom0's grant copy of the frame.
  assert.deepEqual(result.roots.map((id) => [hops[id].seq, hops[id].actor]), [[69847, 'dom0 netback']]);
  /** The seqs and actors on the chain from the root through the first source each time, to an origin. */
  const chain: string[] = [];
  for (let hop = hops[result.roots[0]]; ; hop = hops[hop.from[0]]) {
    chain.push(`${hop.seq} ${hop.actor}`);
    if (hop.from.length === 0) break;
  }
  assert.deepEqual(chain.slice(0, 7), [
    '69847 dom0 netback', '69846 dom0 netback', '69844 dom0 netback', '69843 the switch', '69842 NIC VF1', '69841 dom0 netback', '69838 dom0 netback',
  ]);
  assert.match(chain[7], /^\d+ alice\.v0$/, `then alice's instruction: ${chain.join(' <- ')}`);
  const byId = (id: number) => hops[id];
  assert.match(byId(result.roots[0]).transformation, /grant copy/);
  assert.ok(hops.some((h) => h.actor === 'the switch' && /802\.1Q tag of VLAN 10/.test(h.transformation)), 'the switch tags the frame');
  const origins = result.origins.map(byId);
  assert.ok(origins.some((h) => h.actor === 'alice.v0' && /^an immediate of mov /.test(h.origin!)), 'alice\'s immediates built the header');
  assert.ok(origins.some((h) => /emulated MMIO read of the VF's BAR0 offset 0x400/.test(h.origin!)), 'the source MAC came from the VF\'s MAC register');
  const text = await ok(['provenance', demo, 'gpa:bob:0x14000/62', '--at', '69848', '--run', '4', '--depth', '9']);
  assert.match(text.stdout, /^provenance of gpa:bob:0x14000\/62 = mfn:\d+\/62 as it was at seq 69848 \(run 4 network-vanilla\):/);
  assert.match(text.stdout, /^origins:$/m);
});

test('reach of alice\'s card: dom0 reads it in plaintext in vanilla (seq 1042), only ciphertext under SMM; her packet reaches dom0 and bob', async () => {
  const vanilla = await ok(['reach', demo, 'gpa:alice:0x1000/31', '--at', '981', '--run', '2']);
  assert.match(vanilla.stdout, /^reach of gpa:alice:0x1000\/31 = mfn:321\/31 \(alice's\) from seq 981 to 54991 \(run 2 two-tenants-vanilla\):$/m);
  assert.match(vanilla.stdout, /^ +1042 +read +dom0 +foreign read of alice's gfn 1: mfn:321\/31 +PLAINTEXT$/m);
  assert.match(vanilla.stdout, /^EXPOSED: dom0 saw alice's bytes in plaintext first at seq 1042/m);
  const secure = await ok(['reach', demo, 'gpa:alice:0x1000/31', '--at', '990', '--run', '1']);
  assert.match(secure.stdout, /^ +1066 +read +dom0 +foreign read of alice's gfn 1: mfn:321\/31 +\(ciphertext\)$/m);
  assert.match(secure.stdout, /^no domain other than alice, and not dom0, saw these bytes in plaintext$/m);
  const packet = JSON.parse((await ok(['reach', demo, 'gpa:alice:0x10000/62', '--at', '69837', '--to', '69858', '--run', '4', '--json'])).stdout) as { events: { seq: number; kind: string; actor: string }[]; exposed: { reader: string; seq: number }[]; remaining: string[] };
  assert.deepEqual(packet.events.map((e) => [e.seq, e.kind, e.actor]), [
    [69838, 'read', 'dom0 netback'], [69843, 'moved', 'the switch'], [69846, 'read', 'dom0 netback'], [69847, 'moved', 'dom0 netback'], [69850, 'read', 'NIC VF2'],
  ]);
  assert.deepEqual(packet.exposed.map((x) => [x.reader, x.seq]), [['dom0', 69838], ['bob', 69850]]);
  assert.deepEqual(packet.remaining, ['mfn:336/62', 'mfn:404/62']);
});

test('explain 1044 of run 2: the rule, dom0\'s read at 1042, alice\'s plant at 980, and the ownership and mapping that made the read possible', async () => {
  const text = await ok(['explain', demo, '1044', '--run', '2']);
  assert.equal(text.stdout, [
    'explain seq 1044 of run 2 (two-tenants-vanilla):',
    'violation dom0-no-plaintext at seq 1044: dom0 read 64 bytes of alice\'s plaintext at gfn 1',
    '  rule: dom0 never sees a guest\'s plaintext: its foreign mappings show ciphertext, and no guest packet passes through its hands.',
    '  the access: seq 1042 dom0: foreign read of alice\'s gfn 1',
    '  the data: mfn:321/64, from 2 origins (2 hops):',
    '    mfn:321/31: scenario plant: the canary secret alice planted (guest.canary at seq 979)',
    '    mfn:321+0x1f/33: uninitialised (never written since the recording began: zeros)',
    '  what made it possible:',
    '    seq 144 own SMM: owner - -> alice',
    '    seq 145 map Xen: p2m of alice: gfn 1 -> mfn 321',
    '  chain: 144 -> 145 -> 980 -> 1042 -> 1044',
    '',
  ].join('\n'));
  const json = JSON.parse((await ok(['explain', demo, '1043', '--run', '2', '--json'])).stdout);
  assert.equal(json.invariant, 'canary-confined');
  assert.equal(json.access.seq, 1042);
  assert.deepEqual(json.chain, [144, 145, 980, 1042, 1043]);
  // mallory's spoofed source MAC: a constant of her own image.
  const spoof = await ok(['explain', demo, '94725', '--run', '4']);
  assert.match(spoof.stdout, /^ {2}the access: seq 94712 the switch: mallory's frame at switch \(VLAN 10, ok\)$/m);
  assert.match(spoof.stdout, /^ {2}the data: frame at switch@94712\[6\.\.11\] \(the source MAC\), from \d+ origins/m);
  assert.match(spoof.stdout, /^ {4}mfn:\d+\+0x[0-9a-f]+\/4 \+ mfn:\d+\+0x[0-9a-f]+\/2: guest image of mallory \(loaded by the domain builder at seq \d+\)$/m);
});

test('index builds every run, says when it is up to date, and --force rebuilds', async () => {
  const copy = join(root, 'index.db');
  copyFileSync(pristine, copy);
  const first = await ok(['index', copy]);
  assert.match(first.stdout, /^run 1 \(two-tenants-secure\): \d+ events indexed, \d+ bytes of index rows$/m);
  assert.match(first.stdout, /^run 4 \(network-vanilla\): 218055 events indexed/m);
  const again = await ok(['index', copy, '--run', '2']);
  assert.equal(again.stdout, 'run 2 (two-tenants-vanilla): index up to date\n');
  const forced = await ok(['index', copy, '--run', '2', '--force']);
  assert.match(forced.stdout, /^run 2 \(two-tenants-vanilla\): \d+ events indexed/);
});

/** Turns a recording's index into one of version 2 (before the written lines and bytes). */
function makeVersion2Index(path: string): void {
  const db = new Database(path);
  db.exec('ALTER TABLE fx_frames DROP COLUMN lines; DROP TABLE fx_written; UPDATE fx_runs SET version = 2;');
  db.close();
}

test('an index of an older version is rebuilt on first use, with the same answers; read-only, it is exit 2 naming the fix', async () => {
  const copy = join(root, 'old-index.db');
  copyFileSync(pristine, copy);
  await ok(['index', copy, '--run', '2']);
  const args = ['who-wrote', copy, 'mfn:321/64', '--at', '1042', '--run', '2', '--json'];
  const current = (await ok(args)).stdout;
  makeVersion2Index(copy);
  await assertReadOnlyRefused(copy, /has no forensic index.*read-only.*'npx chronovisor index .*ro\.db' on a copy you may write/);
  assert.equal((await ok(args)).stdout, current);
});

function assertUsage(args: string[], r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 2, describeResult(args, r));
  assert.equal(r.stdout, '', describeResult(args, r));
  assert.match(r.stderr, pattern, describeResult(args, r));
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, describeResult(args, r));
}

test('bad input is exit 2 with a message naming the argument, and the recording stays as it was', async () => {
  const dir = tempDir('chronovisor-forensics-bad');
  try {
    const db = join(dir, 'r.db');
    copyFileSync(demo, db);
    await ok(['index', db]);
    const before = fingerprint(db);
    const cases: [string[], RegExp][] = [
      [['who-wrote', db, 'phys:0x1000', '--at', '5'], /ADDR phys:0x1000: unknown address space 'phys'/],
      [['who-wrote', db, 'gpa:zoe:0x1000', '--at', '1042', '--run', '2'], /ADDR: no domain 'zoe' at seq 1042; domains then: /],
      [['who-wrote', db, 'mfn:321+0x2000', '--at', '5'], /offset 0x2000 is beyond the frame/],
      [['who-wrote', db, 'mfn:321', '--at', '99999999', '--run', '2'], /--at 99999999: run 2 has 54992 events; give 0\.\.54992/],
      [['history', db, 'mfn:321', '--run', '2', '--kind', 'q'], /--kind q: no such access; accesses: r, w, x/],
      [['who-wrote', db, 'mfn:321'], /required option '--at <seq>'/],
      [['reach', db, 'mfn:321', '--at', '1000', '--to', '10', '--run', '2'], /--at 1000 --to 10: the range is empty/],
      [['explain', db, '1042', '--run', '2'], /SEQ 1042: a dom0\.foreign_read event, not a violation; list them with 'log --kind violation'/],
      [['explain', db, '54992', '--run', '2'], /SEQ 54992: run 2 has 54992 events; give 0\.\.54991/],
      [['provenance', db, 'mfn:321', '--at', '5', '--run', '2', '--budget', 'x'], /--budget x: expected a whole number >= 1/],
    ];
    for (const [args, pattern] of cases) assertUsage(args, await cli(args, dir), pattern);
    assert.deepEqual(fingerprint(db), before);
  } finally {
    removeDir(dir);
  }
});

/** Runs the CLI as an unprivileged user when this test runs as root (root may write any file). */
function cliAsUser(args: string[], cwd: string): Promise<CliResult> {
  if (process.getuid?.() !== 0) return cli(args, cwd);
  return collect(spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv(), uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/**
 * A read-only copy of `source` asked who-wrote by an unprivileged user: exit 2 with `pattern`,
 * and the copy not changed. The folder stays writable: SQLite opens even a read-only database
 * with a shared-memory file beside it.
 */
async function assertReadOnlyRefused(source: string, pattern: RegExp): Promise<void> {
  const dir = tempDir('chronovisor-forensics-ro');
  try {
    const db = join(dir, 'ro.db');
    copyFileSync(source, db);
    const before = fingerprint(db);
    chmodSync(db, 0o444);
    chmodSync(dir, 0o777);
    const args = ['who-wrote', db, 'mfn:321/64', '--at', '1042', '--run', '2'];
    assertUsage(args, await cliAsUser(args, dir), pattern);
    chmodSync(dir, 0o755);
    chmodSync(db, 0o644);
    assert.deepEqual(fingerprint(db), before);
  } finally {
    removeDir(dir);
  }
}

test('a read-only recording without an index is exit 2 naming the fix, and is not changed', async () => {
  await assertReadOnlyRefused(pristine, /has no forensic index, and the file is read-only, so none can be added; run 'npx chronovisor index .*ro\.db' on a copy you may write/);
});
