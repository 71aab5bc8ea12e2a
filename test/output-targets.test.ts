/**
 * Where commands write: a recording is an SQLite file, so `--out -` and an --out that is not
 * a regular file (a FIFO here, made with mkfifo) are refused at once with exit 2 by every
 * command that writes one (SQLite would wait forever on a FIFO), and a reader given a FIFO is
 * refused the same way. Exports write to FIFOs and stdout: see export-pcap.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cli, describeResult, listing, loopScenario, removeDir, tempDir, writeText } from './helpers/cli.ts';

let dir: string;
before(() => {
  dir = tempDir('chronovisor-output-targets');
  writeText(dir, 'small.yaml', loopScenario({ seed: 3, times: 10 }));
  assert.equal(spawnSync('mkfifo', [join(dir, 'pipe')]).status, 0, 'mkfifo');
});
after(() => removeDir(dir));

const cases: [string, string[], RegExp][] = [
  ['run --out -', ['run', 'small.yaml', '--out', '-'], /--out -: a recording is an SQLite file, which cannot go to standard output/],
  ['run --out FIFO', ['run', 'small.yaml', '--out', 'pipe'], /pipe: not a chronovisor recording \(not a regular file\)/],
  ['demo --out -', ['demo', '--out', '-'], /--out -: a recording is an SQLite file/],
  ['demo --out FIFO', ['demo', '--out', 'pipe'], /pipe: not a chronovisor recording \(not a regular file\)/],
  ['fuzz --out -', ['fuzz', '--runs', '1', '--out', '-'], /--out -: a recording is an SQLite file/],
  ['fuzz --out FIFO', ['fuzz', '--runs', '1', '--out', 'pipe'], /pipe: not a chronovisor recording \(not a regular file\)/],
  ['runs FIFO', ['runs', 'pipe'], /pipe: not a chronovisor recording \(not a regular file\)/],
  ['log FIFO', ['log', 'pipe'], /pipe: not a chronovisor recording \(not a regular file\)/],
];

for (const [name, args, message] of cases) {
  test(`${name}: exit 2 at once, nothing created, the FIFO left as it was`, async () => {
    const r = await cli(args, dir);
    const what = describeResult(args, r);
    assert.equal(r.code, 2, what);
    assert.match(r.stderr, message, what);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, what);
    assert.ok(statSync(join(dir, 'pipe')).isFIFO());
    assert.ok(!existsSync(join(dir, '-')), 'no file named -');
    assert.deepEqual(listing(dir), ['pipe', 'small.yaml']);
  });
}
