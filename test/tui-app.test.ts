/**
 * The TUI's frames, exactly: the real app rendered by Ink at a fixed size (100x30, and the
 * smallest supported, 80x24) on small recordings of recordings/two-tenants.yaml made here,
 * driven with the keys a terminal sends, compared with golden frames in test/fixtures/tui/.
 * After a change that is meant to alter them: UPDATE_GOLDEN=1 npm test, then review the diff.
 */
import { FLAWS } from '../src/core/hypervisor/flaws.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEYS, assertGolden, openApp, recordTwoTenants, type Harness } from './fixtures/tui/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'chronovisor-tui-app-'));
const recording = join(dir, 'two-tenants.db');
const SMALL = { columns: 80, rows: 24 };
const opened: Harness[] = [];

before(() => recordTwoTenants(recording, 6000));
after(() => {
  for (const h of opened) h.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A private copy of the recording, so a test that forks changes no other test's runs. */
function copy(name: string): string {
  const path = join(dir, `${name}.db`);
  copyFileSync(recording, path);
  return path;
}

async function app(options: Parameters<typeof openApp>[1], path = recording): Promise<Harness> {
  const h = await openApp(path, options);
  opened.push(h);
  return h;
}

const header = (frame: string): string => frame.split('\n')[0];

test('browse: the first frame, stepping, rewinding', async () => {
  const h = await app({ run: 2 });
  assertGolden('start', h.frame());
  await h.press('l', 'l', 'l');
  assertGolden('step', h.frame());
  await h.press(KEYS.left, 'h', KEYS.up);
  assert.equal(h.frame(), (await app({ run: 2 })).frame(), 'three steps forward and three back is the first frame again');
});

test('the next violation, and the state panes at it', async () => {
  const h = await app({ run: 2 });
  await h.press(']');
  assertGolden('violation', h.frame());
  await h.press('3');
  assertGolden('memory-vanilla', h.frame());
  await h.press(KEYS.tab);
  assertGolden('smm', h.frame());
  await h.press(KEYS.tab);
  assertGolden('io', h.frame());
});

test('jump to a seq; the x86 vCPU with its registers and instruction', async () => {
  const h = await app({ run: 2 });
  await h.press(':');
  await h.type('1034');
  await h.press(KEYS.enter, '2');
  assertGolden('machine-x86', h.frame());
  await h.press('E');
  assertGolden('machine-vm-exit', h.frame());
});

test('search: the prompt, a match, the next and previous match', async () => {
  const h = await app({ run: 2 });
  await h.press('/');
  await h.type('dom:bob hyper');
  assertGolden('search-prompt', h.frame());
  await h.press(KEYS.enter);
  assertGolden('search-match', h.frame());
  const first = header(h.frame());
  await h.press('n');
  assert.notEqual(header(h.frame()), first, 'n moves to the next match');
  await h.press('N');
  assert.equal(header(h.frame()), first, 'N comes back');
});

test('help, and the end of the run', async () => {
  const h = await app({ run: 2 });
  await h.press('?');
  assertGolden('help', h.frame());
  await h.press(KEYS.esc, 'G');
  assertGolden('end', h.frame());
});

test('fork from the form, the diff it opens, the run list', async () => {
  const h = await app({ run: 2 }, copy('fork'));
  await h.press(':');
  await h.type('1034');
  await h.press(KEYS.enter, 'f');
  assertGolden('fork-form', h.frame());
  await h.press(KEYS.enter);
  assertGolden('diff-after-fork', h.frame());
  await h.press('l', 'l', 'l', 'l', 'l', 'l');
  assertGolden('diff-stepped', h.frame());
  await h.press(KEYS.esc, 'd');
  assertGolden('run-list', h.frame());
});

test('the fork form checks a modification before it can be submitted', async () => {
  const h = await app({ run: 2 }, copy('form'));
  await h.press(':');
  await h.type('1034');
  // Past the profile, every planted flaw and the quantum, to alice's operations.
  await h.press(KEYS.enter, 'f', ...Array<string>(FLAWS.length + 2).fill(KEYS.right), KEYS.down);
  await h.type('[yield, {read: {gpa: 0x2000');
  assertGolden('fork-form-invalid', h.frame());
  await h.press(KEYS.enter);
  assert.match(h.frame(), /cannot fork yet/, 'Enter does nothing while the form has a problem');
  await h.type(', len: 4}}]');
  assert.match(h.frame(), /Enter forks the run/);
});

test('80x24: the first frame, and the secure run\'s memory (ciphertext beside plaintext)', async () => {
  const h = await app({ run: 1, size: SMALL });
  assertGolden('small-start', h.frame());
  await h.press('/');
  await h.type('mem.write dom:alice');
  // One step on: the state after alice's write, ciphertext as stored beside her plaintext.
  await h.press(KEYS.enter, 'l', '3');
  assertGolden('small-memory-secure', h.frame());
  assert.match(h.frame(), /\| 61 6c 69 63 65 3a 20 63 {2}alice: c/, 'the plaintext side shows alice\'s secret');
  for (const line of h.frame().split('\n')) assert.ok(line.length <= SMALL.columns, `a line is wider than 80 columns: ${line}`);
});
