/**
 * Campaigns on a BullMQ queue over a real Redis (redis-server on a free port), end to end
 * through the command line: `chronovisor worker` processes take the shards, the coordinator
 * merges what they find into its recording. Each test proves one promise of the design:
 * - two worker processes share a campaign, find a planted flaw, and the coordinator records
 *   each bug once (de-duplicated by signature) as a run that verify accepts;
 * - a worker killed (SIGKILL) in the middle of a shard loses nothing: BullMQ's stalled-job
 *   check hands the shard to another worker, which finds the same counterexample;
 * - a coordinator killed mid-campaign is resumed with --resume and finishes the campaign;
 * - payloads of another version or format, or malformed ones, are refused with the reason and
 *   the worker goes on;
 * - bad URLs, an unreachable Redis and a refused password are usage errors (exit 2) that name
 *   the URL (never the password) and the fix.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { cli, describeResult, listing, parseJsonLines, removeDir, startCli, tempDir, type CliResult } from './helpers/cli.ts';
import { freePort, startRedis, type RedisServer } from './helpers/redis.ts';
import type { ChildProcess } from 'node:child_process';

const EXIT_FOUND = 1;
const EXIT_USAGE = 2;
const TIMEOUT = { timeout: 180_000 };

interface Found { finding: string; signature: string; run: number; mode: string }
interface Report { campaign: string; queue: string; workers: number; runs: number; duplicates: number; counterexamples: (Found & { explanation: { run: number; invariant: string; chain: number[] } | null })[] }

let root: string;
let redis: RedisServer;
before(async () => {
  root = tempDir('chronovisor-fuzz-queue');
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
  removeDir(root);
});

const caseDir = (): string => mkdtempSync(join(root, 'case-'));

/** A long-running chronovisor process whose stderr is watched. */
class Background {
  readonly child: ChildProcess;
  stderr = '';
  stdout = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], cwd: string) {
    this.child = startCli(args, cwd);
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString('utf8'); });
    this.child.stdout!.on('data', (d: Buffer) => { this.stdout += d.toString('utf8'); });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Resolves with the first match of `pattern` on stderr. */
  async waitFor(pattern: RegExp, limitMs = 60_000): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = pattern.exec(this.stderr);
      if (m) return m;
      if (Date.now() - start > limitMs) throw new Error(`no ${pattern} in:\n${this.stderr}`);
      if (this.child.exitCode !== null) throw new Error(`exited ${this.child.exitCode} before ${pattern}:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

const worker = (dir: string): Background => new Background(['worker', '--queue', redis.url, '--concurrency', '1'], dir);

async function ok(args: string[], cwd: string, code: number): Promise<CliResult> {
  const r = await cli(args, cwd);
  assert.equal(r.code, code, describeResult(args, r));
  return r;
}

async function verified(db: string, run: number, cwd: string): Promise<void> {
  await ok(['verify', db, '--run', String(run)], cwd, 0);
}

/** Shard ids a worker started, from its log. */
const shardsStarted = (w: Background): string[] => [...w.stderr.matchAll(/shard (\S+): seed/g)].map((m) => m[1]);

test('two worker processes share a campaign, find a planted flaw, and each bug is recorded once as a verifiable run', TIMEOUT, async () => {
  const dir = caseDir();
  const workers = [worker(dir), worker(dir)];
  try {
    await Promise.all(workers.map((w) => w.waitFor(/taking shards/)));
    // 600 cases in 6 shards: several shards meet the flaw, so the merge has duplicates to drop.
    const args = ['fuzz', '--queue', redis.url, '--flaw', 'no-scrub', '--runs', '600', '--seed', '1', '--out', 'q.db', '--json'];
    const r = await ok(args, dir, EXIT_FOUND);
    const report = JSON.parse(r.stdout) as Report;
    assert.ok(report.counterexamples.length >= 1, describeResult(args, r));
    for (const c of report.counterexamples) {
      assert.match(c.finding, /^scrub-between-owners:/);
      // Each merged run comes with the explanation of its violation.
      assert.equal(c.explanation?.run, c.run);
      assert.equal(c.explanation?.invariant, 'scrub-between-owners');
    }
    const signatures = report.counterexamples.map((c) => c.signature);
    assert.equal(new Set(signatures).size, signatures.length, 'one run per signature');
    // Every recorded run is a counterexample of this campaign, and verifies.
    const runs = parseJsonLines<{ id: number; name: string }>((await ok(['runs', 'q.db', '--json'], dir, 0)).stdout);
    assert.deepEqual(runs.map((x) => x.id).sort(), report.counterexamples.map((c) => c.run).sort());
    for (const c of report.counterexamples) await verified('q.db', c.run, dir);
    // Both processes took shards, and together all six.
    const taken = workers.map(shardsStarted);
    assert.ok(taken.every((t) => t.length > 0), `shards per worker: ${JSON.stringify(taken)}`);
    assert.equal(new Set(taken.flat()).size, 6);
    assert.ok(report.runs > 0 && report.runs <= 600, `runs ${report.runs}`);
    assert.equal(report.workers, 2, 'the coordinator saw both workers');
    assert.equal(report.queue, redis.url);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a worker killed mid-shard (SIGKILL) loses nothing: another worker runs the shard and its finding is merged', TIMEOUT, async () => {
  const dir = caseDir();
  const first = worker(dir);
  let second: Background | undefined;
  try {
    await first.waitFor(/taking shards/);
    // One shard of 100 cases; vf-spoofcheck-off shows with seed 1 after ~90 of them.
    const coordinator = new Background(['fuzz', '--queue', redis.url, '--flaw', 'vf-spoofcheck-off', '--runs', '100', '--seed', '1', '--out', 'k.db', '--json'], dir);
    const [, shard] = await first.waitFor(/shard (\S+): seed/);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.doesNotMatch(first.stderr, /cases, found/, 'the first worker was killed before it finished the shard');
    second = worker(dir);
    const code = await coordinator.exited;
    assert.equal(code, EXIT_FOUND, `coordinator:\n${coordinator.stderr}\n${coordinator.stdout}`);
    assert.deepEqual(shardsStarted(second), [shard], 'the second worker ran the killed worker\'s shard');
    const report = JSON.parse(coordinator.stdout) as Report;
    assert.equal(report.counterexamples.length, 1);
    assert.match(report.counterexamples[0].finding, /^net-isolation:/);
    await verified('k.db', report.counterexamples[0].run, dir);
  } finally {
    await first.stop();
    await second?.stop();
  }
});

test('a coordinator killed mid-campaign is resumed with --resume and finishes it; a finished campaign reports again', TIMEOUT, async () => {
  const dir = caseDir();
  const w = worker(dir);
  try {
    await w.waitFor(/taking shards/);
    const coordinator = new Background(['fuzz', '--queue', redis.url, '--flaw', 'vf-spoofcheck-off', '--runs', '300', '--seed', '1', '--out', 'r.db', '--json'], dir);
    const [, id] = await coordinator.waitFor(/campaign (\S+): if this process stops, resume with .* --resume (\S+)/);
    await w.waitFor(/shard \S+: seed/);
    coordinator.child.kill('SIGKILL');
    await coordinator.exited;
    const args = ['fuzz', '--queue', redis.url, '--resume', id, '--json'];
    const r = await ok(args, dir, EXIT_FOUND);
    const report = JSON.parse(r.stdout) as Report;
    assert.equal(report.campaign, id);
    // Cases counted up to each shard's finding (shrinking is not counted): within the budget;
    // that all three shards ran is checked on the worker's log below.
    assert.ok(report.runs > 0 && report.runs <= 300, `${report.runs} cases`);
    assert.equal(report.counterexamples.length, 1, describeResult(args, r));
    assert.match(report.counterexamples[0].finding, /^net-isolation:/);
    await verified('r.db', report.counterexamples[0].run, dir);
    assert.equal(new Set(shardsStarted(w)).size, 3);
    // Resuming a finished campaign prints its report again.
    const again = await ok(args, dir, EXIT_FOUND);
    assert.deepEqual(JSON.parse(again.stdout), report);
  } finally {
    await w.stop();
  }
});

test('a guided campaign on the queue: the coordinator merges the corpus, later shards carry it, the recording keeps it', TIMEOUT, async () => {
  const dir = caseDir();
  const w = worker(dir);
  try {
    await w.waitFor(/taking shards/);
    const args = ['fuzz', '--queue', redis.url, '--guided', '--runs', '400', '--seed', '3', '--out', 'gq.db', '--json'];
    const report = JSON.parse((await ok(args, dir, 0)).stdout) as Report & { mode: string; corpus: number };
    assert.equal(report.mode, 'guided');
    assert.ok(report.corpus > 0, 'the campaign has a corpus');
    const carried = [...w.stderr.matchAll(/guided, corpus (\d+)/g)].map((m) => Number(m[1]));
    assert.equal(carried.length, 4, 'four shards');
    assert.equal(carried[0], 0, 'the first shard starts from an empty corpus');
    assert.ok(carried.at(-1)! > 0, `a later shard carries what earlier ones found: ${carried.join(', ')}`);
    // The next guided campaign on the same recording starts from the corpus it kept.
    await ok(['fuzz', '--queue', redis.url, '--guided', '--runs', '100', '--seed', '9', '--out', 'gq.db', '--json'], dir, 0);
    assert.match(w.stderr, new RegExp(`seed 9, 100 cases, guided, corpus ${Math.min(report.corpus, 128)}`));
  } finally {
    await w.stop();
  }
});

test('a worker refuses payloads of another version or format and malformed ones, says why, and goes on', TIMEOUT, async () => {
  const dir = caseDir();
  const w = worker(dir);
  const connection = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
  const queue = new Queue('fuzz', { connection, prefix: 'chronovisor' });
  try {
    await w.waitFor(/taking shards/);
    const bad: [unknown, RegExp][] = [
      [{ format: 99, simVersion: '0.1.0' }, /job format 99, this worker reads format 1/],
      [{ format: 1, simVersion: '9.9.9' }, /job from chronovisor 9\.9\.9, this worker is .*coordinator's version/],
      ['not an object', /malformed job payload/],
      [{ format: 1, simVersion: '0.1.0', campaign: 'x', index: 0, options: { profile: 'secure', flaws: ['no-such-flaw'], seed: 1, runs: 1 } }, /malformed job payload: options\.flaws\.0/],
    ];
    const jobs = await Promise.all(bad.map(([data], i) => queue.add('shard', data, { jobId: `bad-${i}` })));
    for (const [i, job] of jobs.entries()) {
      const state = await waitState(job, 'failed');
      assert.equal(state, 'failed');
      const failed = (await queue.getJob(job.id!))!;
      assert.match(failed.failedReason, bad[i][1]);
      assert.equal(failed.attemptsMade, 1, 'a refused payload is not retried');
    }
    assert.match(w.stderr, /refused job bad-0: job format 99/);
    // Still working: a real campaign runs on it.
    await ok(['fuzz', '--queue', redis.url, '--runs', '20', '--seed', '2', '--out', 'after.db'], dir, 0);
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
    connection.disconnect();
    await w.stop();
  }
});

async function waitState(job: Job, wanted: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const state = await job.getState();
    if (state === wanted) return state;
    await new Promise((r) => setTimeout(r, 50));
  }
  return job.getState();
}

test('bad URLs, an unreachable Redis and a refused password: exit 2 with the URL (no password) and the fix, nothing written', TIMEOUT, async () => {
  const closed = await freePort();
  const guarded = await startRedis('s3cret-pw');
  try {
    const cases: [string[], RegExp][] = [
      [['fuzz', '--queue', 'http://127.0.0.1:6379', '--runs', '1'], /--queue http:\/\/127\.0\.0\.1:6379: scheme http is not redis; expected redis:\/\/HOST:PORT\[\/DB\]/],
      [['fuzz', '--queue', 'redis://127.0.0.1:99999', '--runs', '1'], /--queue redis:\/\/127\.0\.0\.1:99999: not a URL/],
      [['fuzz', '--queue', 'redis://127.0.0.1:6379/zero', '--runs', '1'], /database zero is not a number/],
      [['fuzz', '--queue', `redis://127.0.0.1:${closed}`, '--runs', '1'], new RegExp(`--queue redis://127\\.0\\.0\\.1:${closed}: cannot reach Redis .*start it \\(redis-server --port ${closed}\\)`)],
      [['worker', '--queue', `redis://127.0.0.1:${closed}`], /cannot reach Redis/],
      [['fuzz', '--queue', `redis://:wrong-pw@127.0.0.1:${guarded.port}`, '--runs', '1'], /redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: Redis refused the user name or password/],
      [['worker', '--queue', `redis://127.0.0.1:${guarded.port}`], /Redis asks for a password .*redis:\/\/:PASSWORD@/],
      [['fuzz', '--queue', redis.url, '--resume', 'no-such-campaign'], /--resume no-such-campaign: no campaign no-such-campaign on redis:\/\/127\.0\.0\.1:\d+/],
      [['fuzz', '--resume', 'x'], /--resume x: resuming a campaign needs the queue it runs on/],
      [['fuzz', '--queue', redis.url, '--workers', '2'], /--queue --workers 2: a queue campaign runs on 'chronovisor worker/],
      [['fuzz', '--queue', redis.url, '--resume', 'x', '--flaw', 'no-scrub'], /--resume x: the campaign keeps the options it was started with; drop --flaw/],
      [['worker', '--queue', redis.url, '--concurrency', '0'], /--concurrency 0: expected a whole number >= 1/],
      [['fuzz', '--queue', redis.url, '--scoreboard'], /--scoreboard --queue: the scoreboard runs on this machine's threads; drop --queue/],
      [['fuzz', '--queue', redis.url, '--seed', '1', '--path', '2:1'], /--queue --path 2:1: replaying one case needs no queue; drop --queue/],
    ];
    await Promise.all(cases.map(async ([args, message]) => {
      const dir = caseDir();
      const r = await cli([...args, ...(args[0] === 'fuzz' ? ['--out', 'x.db'] : [])], dir);
      const what = describeResult(args, r);
      assert.equal(r.code, EXIT_USAGE, what);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at |wrong-pw|s3cret-pw/, what);
      assert.deepEqual(listing(dir), [], `nothing written\n${what}`);
    }));
  } finally {
    await guarded.stop();
  }
});
