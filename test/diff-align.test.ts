/**
 * `diff` aligns runs by tick and actor. The bundled two-tenants scenario, recorded in both
 * profiles, is the outside reference: its comments (and the README) say what differs - SMM
 * sets up VT-d at boot, scrubs the frames bob gives back, shows dom0 ciphertext where
 * vanilla shows alice's card number, and gives carol zeros where vanilla gives her bob's key;
 * nothing else. The diff must report exactly those regions, first first, each with the state
 * it changed; the same in --json. A run against itself has no region, and a fork's regions
 * start at its fork point.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cli, describeResult, removeDir, tempDir } from './helpers/cli.ts';
import { recordTwoTenants } from './fixtures/tui/harness.ts';

interface EventJson { seq: number; kind: string; [field: string]: unknown }
interface Region {
  ticks: [number, number]; a: [number, number]; b: [number, number]; actors: string[]; differing: number;
  first: { actor: string; tick: number; a: EventJson | null; b: EventJson | null }[];
  state: { area: string; what: string; a: string; b: string }[];
}
interface DiffJson { divergedAt: number | null; alignedFrom: number; alike: number; regionCount: number; regions: Region[] }

let dir: string;
before(() => {
  dir = tempDir('chronovisor-diff-align');
  recordTwoTenants(join(dir, 'r.db'), Number.MAX_SAFE_INTEGER);
});
after(() => removeDir(dir));

async function diffJson(...args: string[]): Promise<DiffJson> {
  const all = ['diff', 'r.db', ...args, '--json'];
  const r = await cli(all, dir);
  assert.equal(r.code, 0, describeResult(all, r));
  return JSON.parse(r.stdout) as DiffJson;
}

const text = (hex: unknown): string => Buffer.from(String(hex), 'hex').toString('latin1');

test('the two profiles of two-tenants: exactly the regions the scenario is about, first first, with the state each changed', async () => {
  const d = await diffJson('1', '2');
  assert.equal(d.divergedAt, 0, 'the boot events differ (they name the profile)');
  assert.equal(d.alignedFrom, 0);
  assert.ok(d.alike > 1000, `most steps are alike: ${d.alike}`);
  assert.deepEqual(d.regions.map((r) => r.ticks[0]), [...d.regions.map((r) => r.ticks[0])].sort((x, y) => x - y), 'first first');
  assert.equal(d.regionCount, 4, JSON.stringify(d.regions.map((r) => [r.ticks, r.actors])));

  const [boot, scrub, foreignRead, scan] = d.regions;
  assert.deepEqual(boot.ticks, [0, 0]);
  assert.equal(boot.first[0].a?.kind, 'vtd.op', 'secure programs VT-d at boot, vanilla does not');
  assert.equal(boot.first[0].a?.op, 'boot');

  assert.deepEqual(scrub.actors, ['bob.0']);
  assert.equal(scrub.first[0].a?.kind, 'smm.scrub', 'secure scrubs the frames bob gives back');
  assert.ok(scrub.state.some((s) => s.area === 'memory' && s.a === 'zero' && s.b !== 'zero'), 'vanilla leaves bob\'s data in them');

  assert.deepEqual(foreignRead.actors, ['dom0']);
  const [read] = foreignRead.first;
  assert.equal(read.a?.kind, 'dom0.foreign_read');
  assert.doesNotMatch(text(read.a?.value), /alice: card/, 'dom0 sees ciphertext under SMM');
  assert.match(text(read.b?.value), /^alice: card 4929-1234-5678-9012/, 'and alice\'s card in vanilla');
  assert.deepEqual(foreignRead.state.filter((s) => s.area === 'violations').map((s) => [s.a, s.b]), [['0', '2']]);

  assert.deepEqual(scan.actors.sort(), ['carol.0', 'dom0']);
  const carol = scan.first.find((x) => x.actor === 'carol.0')!;
  assert.match(text(carol.b?.value), /^bob: ssh private key/, 'carol finds bob\'s key in vanilla');
  assert.match(String(carol.a?.value), /^0+$/, 'and zeros under SMM');
  assert.ok(scan.first.some((x) => x.a === null && x.b?.kind === 'violation' && x.b.invariant === 'scrub-between-owners'));
});

test('the text report names the same regions', async () => {
  const r = await cli(['diff', 'r.db', '1', '2'], dir);
  assert.equal(r.code, 0, describeResult(['diff'], r));
  assert.match(r.stdout, /^the events differ from seq 0 \(the boot event names the profile\)$/m);
  assert.match(r.stdout, /^aligned by tick and actor from seq 0 .*: \d+ steps alike, 4 regions differ$/m);
  assert.deepEqual([...r.stdout.matchAll(/^region (\d) of 4: (ticks? [\d.]+), A seq \d+\.\.\d+, B seq \d+\.\.\d+, ([\w. ]+) \(/gm)].map((m) => m[3]), ['machine', 'bob.0', 'dom0', 'dom0 carol.0']);
  assert.match(r.stdout, /^ {4}B +\d+ +dom0\.foreign_read target=alice .*value="alice: card/m);
  assert.match(r.stdout, /^ {6}violations: A 0 \| B 2$/m);
  const limited = await cli(['diff', 'r.db', '1', '2', '--regions', '1'], dir);
  assert.match(limited.stdout, /^\.\.\. 3 more regions \(--regions N shows more\)$/m);
});

test('a run against itself has no region; a fork\'s regions start at its fork point', async () => {
  const same = await diffJson('2', '2');
  assert.equal(same.divergedAt, null);
  assert.equal(same.regionCount, 0);
  const fork = await cli(['fork', 'r.db', '--run', '2', '--at', '500', '--set', 'dom0.foreign_read=alice:1:0:32', '--events', '2000'], dir);
  assert.equal(fork.code, 0, describeResult(['fork'], fork));
  const forkSeq = Number(/at seq (\d+)/.exec(fork.stdout)![1]);
  const d = await diffJson('2', '3');
  assert.equal(d.divergedAt, forkSeq);
  assert.equal(d.alignedFrom, forkSeq, 'the shared prefix is not aligned again');
  assert.ok(d.regionCount >= 1);
  const [first] = d.regions;
  assert.equal(first.a[0], forkSeq);
  assert.ok(first.first.some((x) => x.b?.kind === 'dom0.foreign_read' || x.b?.kind === 'input'), JSON.stringify(first.first));
});
