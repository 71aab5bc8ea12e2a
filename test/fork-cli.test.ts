/**
 * `fork` with no --set. The machine is deterministic, so an unchanged fork records exactly
 * its parent's events: of a run that ran to its end it is refused (exit 2, no run added);
 * of a run cut short it continues from the parent's end, storing only what is new, and ends
 * where the uncut run ends (the same head hash).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CHUNK_EVENTS } from '../src/events/store.ts';
import { cli, describeResult, fingerprint, loopScenario, parseJsonLines, removeDir, tempDir, writeText } from './helpers/cli.ts';

let dir: string;
before(async () => {
  dir = tempDir('chronovisor-fork-cli');
  writeText(dir, 'loop.yaml', loopScenario({ seed: 5, times: 1500 }));
  for (const args of [['run', 'loop.yaml', '--out', 'r.db'], ['run', 'loop.yaml', '--out', 'r.db', '--max-events', '9000']]) {
    const r = await cli(args, dir);
    assert.equal(r.code, 0, describeResult(args, r));
  }
});
after(() => removeDir(dir));

type RunJson = { id: number; status: string; events: number; head: string; parentRun: number | null; forkSeq: number | null };
const runs = async (): Promise<RunJson[]> => parseJsonLines<RunJson>((await cli(['runs', 'r.db', '--json'], dir)).stdout);

test('no --set on a run that ran to its end: refused as a no-op, exit 2, the recording untouched', async () => {
  const before = fingerprint(join(dir, 'r.db'));
  const args = ['fork', 'r.db', '--run', '1', '--at', '100'];
  const r = await cli(args, dir);
  assert.equal(r.code, 2, describeResult(args, r));
  assert.match(r.stderr, /^chronovisor: fork without --set: run 1 ran to its end, and with no change the fork would record exactly its events again; give a change with --set KEY=VALUE/);
  assert.deepEqual(fingerprint(join(dir, 'r.db')), before);
});

test('no --set on a run cut short: continues from its end, sharing every event it has', async () => {
  const [full, stopped] = await runs();
  assert.equal(stopped.status, 'stopped');
  const args = ['fork', 'r.db', '--run', '2', '--at', '100'];
  const r = await cli(args, dir);
  assert.equal(r.code, 0, describeResult(args, r));
  assert.match(r.stderr, /no --set: the fork continues run 2 from its end \(seq 9000\), sharing all its events/);
  const fork = (await runs())[2];
  assert.deepEqual({ parentRun: fork.parentRun, forkSeq: fork.forkSeq, events: fork.events, head: fork.head }, { parentRun: 2, forkSeq: 9000, events: full.events, head: full.head });
  const db = new Database(join(dir, 'r.db'), { readonly: true });
  const own = (db.prepare('SELECT first_seq FROM chunks WHERE run = 3 ORDER BY first_seq').all() as { first_seq: number }[]).map((c) => c.first_seq);
  db.close();
  assert.equal(own[0], Math.floor(9000 / CHUNK_EVENTS) * CHUNK_EVENTS, 'the fork stores chunks from the one holding its fork point on, no earlier');
  const verify = await cli(['verify', 'r.db', '--run', '3'], dir);
  assert.equal(verify.code, 0, describeResult(['verify'], verify));
});
