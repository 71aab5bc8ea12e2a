/**
 * cli/heap.ts relies on V8 reading the young generation's growth factor each time it would
 * grow it (not only when the heap is made): an export's young generation must then stay
 * the size it had when the export began, however much survives its collections. A process
 * that keeps a window of a decoded chunk's worth of objects alive while it allocates, as an
 * export does, is measured with and without the call (the one without must grow, or the
 * test proves nothing). Each in a process of its own: V8's flags are the whole process's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const HEAP = fileURLToPath(new URL('../src/cli/heap.ts', import.meta.url));

/** The new space's size in bytes before and after allocating with much surviving, in a fresh process. */
function newSpaceGrowth(keepSmall: boolean): { before: number; after: number } {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { stopYoungGenerationGrowing } from ${JSON.stringify(HEAP)};
    const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    ${keepSmall ? 'stopYoungGenerationGrowing();' : ''}
    const before = newSpace();
    // A window of 4096 live records, replaced one at a time: what survives each scavenge.
    const window = new Array(4096);
    for (let i = 0; i < 3_000_000; i++) window[i % 4096] = { seq: i, kind: 'cpu.step', delta: [i, i + 1], text: 'x' + i };
    process.stdout.write(JSON.stringify({ before, after: newSpace() }));
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as { before: number; after: number };
}

test('heap: by default the young generation grows under survival; after stopYoungGenerationGrowing it stays as it was', () => {
  const grown = newSpaceGrowth(false);
  assert.ok(grown.after > grown.before, `without the call the new space should grow (${grown.before} -> ${grown.after} bytes), or this test measures nothing`);
  const kept = newSpaceGrowth(true);
  assert.equal(kept.after, kept.before, `the new space grew from ${kept.before} to ${kept.after} bytes`);
});
