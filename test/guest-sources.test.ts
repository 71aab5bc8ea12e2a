/**
 * The files a scenario names (guest.x86.source and every %include) stay inside the scenario's
 * folder or a folder allowed with --guest-path, and their total size is capped. Whatever is
 * refused is refused with exit 2, one message naming the path and the way to allow it,
 * nothing on stdout, no stack trace and no recording created; what is allowed records and
 * verifies without the files (the recording keeps them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cli, describeResult, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

const root = tempDir('chronovisor-guest-sources');
after(() => removeDir(root));

let cases = 0;
/** A fresh folder holding `scenario/` (where the scenario goes) and `elsewhere/` beside it. */
function caseDir(): { dir: string; scenario: string; elsewhere: string } {
  const dir = join(root, `case-${cases++}`);
  for (const sub of ['scenario/guests', 'elsewhere']) mkdirSync(join(dir, sub), { recursive: true });
  return { dir, scenario: join(dir, 'scenario'), elsewhere: join(dir, 'elsewhere') };
}

/** A scenario with one x86 domain running `source`. */
function scenarioText(source: string): string {
  return `seed: 1
machine: { memoryMiB: 4 }
dom0: { memoryKiB: 256 }
domains:
  - name: erin
    memoryKiB: 64
    guest: { x86: { source: ${JSON.stringify(source)} } }
`;
}

/** A guest that shuts itself down; `include` puts an %include line in it. */
function guest(include?: string): string {
  return ['bits 32', 'org 0x1000', include === undefined ? '' : `%include "${include}"`,
    'mov eax, 29', 'mov ebx, 2', 'vmcall', 'hlt', ''].join('\n');
}

async function run(cwd: string, source: string, ...flags: string[]): Promise<{ args: string[]; r: CliResult }> {
  writeFileSync(join(cwd, 'erin.yaml'), scenarioText(source));
  const args = ['run', 'erin.yaml', '--out', 'erin.db', ...flags];
  return { args, r: await cli(args, cwd) };
}

/** Exit 2, the patterns on stderr, nothing on stdout, no stack trace, no recording. */
function assertRefused(cwd: string, { args, r }: { args: string[]; r: CliResult }, ...patterns: (string | RegExp)[]): void {
  const what = describeResult(args, r);
  assert.equal(r.code, 2, what);
  assert.equal(r.stdout, '', what);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at .+:\d+:\d+\)?\n/, what);
  for (const p of patterns) {
    if (typeof p === 'string') assert.ok(r.stderr.includes(p), `stderr should include ${JSON.stringify(p)}\n${what}`);
    else assert.match(r.stderr, p, what);
  }
  assert.equal(existsSync(join(cwd, 'erin.db')), false, `no recording should be created\n${what}`);
}

/** Exit 0, and the recording verifies once the guest files are gone. */
async function assertRecordsWithoutFiles(cwd: string, { args, r }: { args: string[]; r: CliResult }, ...gone: string[]): Promise<void> {
  assert.equal(r.code, 0, describeResult(args, r));
  for (const path of gone) rmSync(path, { recursive: true });
  const verify = await cli(['verify', 'erin.db'], cwd);
  assert.equal(verify.code, 0, describeResult(['verify', 'erin.db'], verify));
}

describe('guest sources are confined to the scenario folder and --guest-path', { concurrency: 4 }, () => {
  test('a source and an include inside the scenario folder are read, and kept in the recording', async () => {
    const { scenario } = caseDir();
    mkdirSync(join(scenario, 'guests/lib'));
    writeFileSync(join(scenario, 'guests/lib/nothing.inc'), '; nothing\n');
    writeFileSync(join(scenario, 'guests/erin.asm'), guest('lib/nothing.inc'));
    await assertRecordsWithoutFiles(scenario, await run(scenario, 'guests/erin.asm'), join(scenario, 'guests'));
  });

  test('a source reached with ../ is refused, naming the path and --guest-path', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'erin.asm'), guest());
    assertRefused(scenario, await run(scenario, '../elsewhere/erin.asm'),
      'erin.yaml: guest source ../elsewhere/erin.asm leads to', "outside the scenario's folder", `--guest-path ${elsewhere}`);
  });

  test('an %include reached with ../ is refused, at its line in the source', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'secret.inc'), 'db "secret"\n');
    writeFileSync(join(scenario, 'guests/erin.asm'), guest('../../elsewhere/secret.inc'));
    assertRefused(scenario, await run(scenario, 'guests/erin.asm'),
      'guests/erin.asm:3:1: %include "../../elsewhere/secret.inc"', "outside the scenario's folder", `--guest-path ${elsewhere}`);
  });

  test('a symlink inside the folder that points outside it is refused', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'secret.inc'), 'db "secret"\n');
    symlinkSync(join(elsewhere, 'secret.inc'), join(scenario, 'guests/innocent.inc'));
    writeFileSync(join(scenario, 'guests/erin.asm'), guest('innocent.inc'));
    assertRefused(scenario, await run(scenario, 'guests/erin.asm'),
      `guests/innocent.inc leads through a symlink to ${join(elsewhere, 'secret.inc')}`, `--guest-path ${elsewhere}`);
  });

  test('a symlinked folder inside that points outside is refused too', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'erin.asm'), guest());
    symlinkSync(elsewhere, join(scenario, 'linked'));
    assertRefused(scenario, await run(scenario, 'linked/erin.asm'), 'leads through a symlink', `--guest-path ${elsewhere}`);
  });

  test('an absolute path outside is refused as such, not reported missing under the scenario folder', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'erin.asm'), guest());
    const r = await run(scenario, join(elsewhere, 'erin.asm'));
    assertRefused(scenario, r, `${join(elsewhere, 'erin.asm')} is an absolute path outside the scenario's folder`, `--guest-path ${elsewhere}`);
    assert.doesNotMatch(r.r.stderr, /not found/);
  });

  test('--guest-path allows a shared folder: ../ sources, includes and absolute paths into it record and verify', async () => {
    const { scenario, elsewhere } = caseDir();
    writeFileSync(join(elsewhere, 'shared.inc'), '; shared\n');
    writeFileSync(join(elsewhere, 'erin.asm'), guest('shared.inc'));
    await assertRecordsWithoutFiles(scenario, await run(scenario, '../elsewhere/erin.asm', '--guest-path', elsewhere));
    rmSync(join(scenario, 'erin.db'));
    writeFileSync(join(elsewhere, 'erin.asm'), guest('shared.inc'));
    writeFileSync(join(elsewhere, 'shared.inc'), '; shared\n');
    await assertRecordsWithoutFiles(scenario, await run(scenario, join(elsewhere, 'erin.asm'), '--guest-path', '../elsewhere'), elsewhere);
  });

  test('a --guest-path that is not a folder is a usage error', async () => {
    const { scenario } = caseDir();
    writeFileSync(join(scenario, 'guests/erin.asm'), guest());
    assertRefused(scenario, await run(scenario, 'guests/erin.asm', '--guest-path', 'no-such-folder'), '--guest-path no-such-folder: no such folder');
  });

  test('a source that is a folder is a clear error, not EISDIR', async () => {
    const { scenario } = caseDir();
    assertRefused(scenario, await run(scenario, 'guests'), 'erin.yaml: guest source guests is a folder');
  });

  test('a scenario path that is a folder is a clear error, not EISDIR', async () => {
    const { scenario } = caseDir();
    const args = ['run', 'guests', '--out', 'erin.db'];
    assertRefused(scenario, { args, r: await cli(args, scenario) }, 'guests: a folder, not a scenario file');
  });

  test('a source that is a FIFO is refused without waiting for a writer', async () => {
    const { scenario } = caseDir();
    const made = spawnSync('mkfifo', [join(scenario, 'guests/erin.asm')]);
    assert.equal(made.status, 0, `mkfifo failed: ${made.stderr}`);
    assertRefused(scenario, await run(scenario, 'guests/erin.asm'), 'guests/erin.asm is not a regular file');
  });

  test('a label alone on a line without a colon is warned about on stderr with its position, and the run goes on', async () => {
    const { scenario } = caseDir();
    writeFileSync(join(scenario, 'guests/erin.asm'), guest().replace('mov eax, 29', 'clc2\nmov eax, 29'));
    const { args, r } = await run(scenario, 'guests/erin.asm');
    assert.equal(r.code, 0, describeResult(args, r));
    assert.match(r.stderr, /^guests\/erin\.asm:4:1: warning: label alone on a line without a colon might be in error \[-w\+label-orphan\] \(guest of domains\[0\]\.guest in erin\.yaml\)$/m);
  });

  test('a missing source is "not found", with where it was looked for', async () => {
    const { scenario } = caseDir();
    assertRefused(scenario, await run(scenario, 'guests/none.asm'), `guests/none.asm not found (looked for ${join(scenario, 'guests/none.asm')})`);
  });
});

describe('guest sources are capped in size, checked before they are read', { concurrency: 4 }, () => {
  test('an 8 GiB source is refused by its size (reading it would fail or exhaust memory)', async () => {
    const { scenario } = caseDir();
    const big = join(scenario, 'guests/erin.asm');
    writeFileSync(big, '');
    truncateSync(big, 8 * 1024 ** 3); // sparse: no disk space, no time
    assertRefused(scenario, await run(scenario, 'guests/erin.asm'),
      'guests/erin.asm (8589934592 bytes) goes over the limit of 1024 KiB', 'raise it with --max-source-kib N');
  });

  test('the limit counts an include every time it is read: an include bomb is stopped', async () => {
    const { scenario } = caseDir();
    // Level k includes level k+1 twice: 2^12 reads of the 100-byte leaf.
    for (let level = 0; level < 12; level += 1) {
      writeFileSync(join(scenario, `guests/l${level}.inc`), `%include "l${level + 1}.inc"\n%include "l${level + 1}.inc"\n`);
    }
    writeFileSync(join(scenario, 'guests/l12.inc'), `; ${'x'.repeat(96)}\n`);
    writeFileSync(join(scenario, 'guests/erin.asm'), guest('l0.inc'));
    assertRefused(scenario, await run(scenario, 'guests/erin.asm', '--max-source-kib', '64'),
      /guest source guests\/l\d+\.inc \(\d+ bytes\) goes over the limit of 64 KiB .* \(\d+ bytes were read before it/);
  });

  test('--max-source-kib raises the limit, and is checked as a number', async () => {
    const { scenario } = caseDir();
    writeFileSync(join(scenario, 'guests/erin.asm'), `${guest()}; ${'x'.repeat(2000)}\n`);
    assertRefused(scenario, await run(scenario, 'guests/erin.asm', '--max-source-kib', '1'), 'goes over the limit of 1 KiB', '--max-source-kib N');
    assertRefused(scenario, await run(scenario, 'guests/erin.asm', '--max-source-kib', '0'), '--max-source-kib 0: expected a whole number >= 1');
    await assertRecordsWithoutFiles(scenario, await run(scenario, 'guests/erin.asm', '--max-source-kib', '3'));
  });
});
