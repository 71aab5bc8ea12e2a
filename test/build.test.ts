/**
 * The build (scripts/build.mjs, `npm run build`): dist/ runs every command on its own, the
 * store thread and the worker threads included, and bin/chronovisor runs it only while it is
 * current: an edited source counts at once, through tsx. Each test works on a copy of the
 * tree (node_modules linked), never on the checkout's own dist/.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv, describeResult, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];
after(() => dirs.forEach(removeDir));

function copyTree(): string {
  const dir = tempDir('chronovisor-build');
  dirs.push(dir);
  for (const entry of ['src', 'bin', 'scripts', 'recordings', 'package.json', 'tsconfig.json']) {
    cpSync(join(ROOT, entry), join(dir, entry), { recursive: true, filter: (from) => !/\.db(-wal|-shm)?$/.test(from) });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

function run(dir: string, command: string, args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(dir, command), ...args], { cwd: dir, env: childEnv(), encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function ok(dir: string, args: string[], command = 'bin/chronovisor'): CliResult {
  const r = run(dir, command, args);
  assert.equal(r.code, 0, describeResult(args, r));
  return r;
}

const DESCRIPTION = 'Deterministic, event-sourced simulator';

test('build: dist/ alone runs the commands, threads included (no source beside it)', () => {
  const dir = copyTree();
  ok(dir, [], 'scripts/build.mjs');
  assert.ok(existsSync(join(dir, 'dist/.build-stamp.json')));
  renameSync(join(dir, 'src'), join(dir, 'src.away'));
  assert.match(ok(dir, ['--help']).stdout, new RegExp(DESCRIPTION));
  // The store's thread records; verify's and fuzz's workers re-execute and fuzz.
  ok(dir, ['run', 'recordings/kernel.yaml', '--out', 'k.db', '--max-events', '20000']);
  assert.match(ok(dir, ['verify', 'k.db', '--workers', '2']).stdout, /hash chain intact, \d+ events re-executed identically/);
  assert.match(ok(dir, ['fuzz', '--runs', '20', '--workers', '2', '--seed', '3', '--out', 'f.db']).stdout, /no counterexample/);
});

test('build: bin/chronovisor runs the build while it is current, the sources once one is edited', () => {
  const dir = copyTree();
  ok(dir, [], 'scripts/build.mjs');
  // Marks in each: which one ran shows in --help.
  const built = join(dir, 'dist/cli/main.js');
  writeFileSync(built, readFileSync(built, 'utf8').replace(DESCRIPTION, 'FROM THE BUILD'));
  assert.match(ok(dir, ['--help']).stdout, /FROM THE BUILD/);
  const source = join(dir, 'src/cli/main.ts');
  writeFileSync(source, readFileSync(source, 'utf8').replace(DESCRIPTION, 'FROM THE SOURCES'));
  assert.match(ok(dir, ['--help']).stdout, /FROM THE SOURCES/);
  ok(dir, [], 'scripts/build.mjs');
  assert.match(ok(dir, ['--help']).stdout, /FROM THE SOURCES/);
  assert.ok(!readFileSync(built, 'utf8').includes('FROM THE BUILD'), 'the build replaced dist/');
});

test('build: a failed build leaves no stamp, so the sources run', () => {
  const dir = copyTree();
  writeFileSync(join(dir, 'src/cli/broken.ts'), 'export const x = ;\n');
  const r = run(dir, 'scripts/build.mjs', []);
  assert.equal(r.code, 1, describeResult(['build'], r));
  assert.match(r.stderr, /broken\.ts/);
  assert.ok(!existsSync(join(dir, 'dist')), 'no dist/ from a failed build');
  assert.match(ok(dir, ['--help']).stdout, new RegExp(DESCRIPTION));
});
