/**
 * Every `chronovisor bench` subcommand runs from the command line: the list comes from the
 * CLI's own table of benchmarks, so a new one cannot be added without being run here. For
 * `bench paging` the bundled guests check their own results (a CRC, per-space sums, the data
 * a page fault brought in) and print "ok": both paging methods must run them to that point,
 * and the table must show what the seed paper says of the two methods.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { BENCHMARKS } from '../src/cli/bench.ts';
import type { PagingResult } from '../src/replay/paging-bench.ts';
import { cli, describeResult, parseJsonLines, removeDir, tempDir } from './helpers/cli.ts';

const dir = tempDir('chronovisor-bench');
after(() => removeDir(dir));

/** What each benchmark's --json output must show beyond running; one entry per benchmark. */
const CHECKS: Readonly<Record<string, (lines: unknown[], table: string) => void>> = {
  paging: (lines, table) => {
    const results = lines as PagingResult[];
    const workloads = ['compute', 'context-switch', 'page-fault'];
    assert.deepEqual(results.map((r) => `${r.workload}/${r.paging}`), workloads.flatMap((w) => [`${w}/shadow`, `${w}/ept`]));
    const selfCheck: Record<string, RegExp> = {
      compute: /^bench-compute: crc32 0e1f4d96 ok/,
      'context-switch': /^bench-ctxswitch: 4000 CR3 loads, .* sums ok, hash 521e0e9f ok/,
      'page-fault': /^bench-pagefault: 6656 page faults, 52 passes x 128 pages, data ok/,
    };
    for (const r of results) assert.match(r.console, selfCheck[r.workload], `${r.workload} under ${r.paging} did not pass its own check`);
    for (const w of ['context-switch', 'page-fault']) {
      const [shadow, ept] = results.filter((r) => r.workload === w);
      // Shadow paging traps CR3 loads, INVLPG and hidden page faults; EPT walks two dimensions instead.
      assert.ok(shadow.exits > 100 * ept.exits, `${w}: shadow ${shadow.exits} exits, EPT ${ept.exits}`);
      assert.ok(ept.walkRefs > shadow.walkRefs, `${w}: EPT ${ept.walkRefs} walk references, shadow ${shadow.walkRefs}`);
      assert.equal(ept.pageWalks, shadow.pageWalks, `${w}: the same TLB misses under both methods`);
    }
    for (const r of results) {
      assert.match(table, new RegExp(`^${r.workload} +${r.paging} +${r.instructions} +${r.exits} +${r.pageWalks} +${r.walkRefs} +${r.cycles} `, 'm'));
    }
  },
};

describe('chronovisor bench: every subcommand runs', () => {
  test('every benchmark has its check here', () => {
    assert.deepEqual(Object.keys(CHECKS).sort(), Object.keys(BENCHMARKS).sort());
  });

  for (const name of Object.keys(BENCHMARKS)) {
    test(`bench ${name} and bench ${name} --json`, async () => {
      const table = await cli(['bench', name], dir);
      assert.equal(table.code, 0, describeResult(['bench', name], table));
      assert.equal(table.stderr, '', describeResult(['bench', name], table));
      const json = await cli(['bench', name, '--json'], dir);
      assert.equal(json.code, 0, describeResult(['bench', name, '--json'], json));
      CHECKS[name](parseJsonLines(json.stdout), table.stdout);
    });
  }

  test('an unknown benchmark is a usage error naming the ones there are', async () => {
    const r = await cli(['bench', 'warp-drive'], dir);
    assert.equal(r.code, 2, describeResult(['bench', 'warp-drive'], r));
    assert.match(r.stderr, /bench warp-drive: no such benchmark; benchmarks: paging/);
  });
});
