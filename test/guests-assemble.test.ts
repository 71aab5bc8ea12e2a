// The guest programs in recordings/guests/ (see the README there) must assemble with the
// project's assembler to exactly the bytes "nasm -f bin" produces from the same file, and stay
// small: every image is loaded at org 0x1000 into a domain of 1 MiB and must be well under
// 64 KiB. A few layout promises the sources make in their comments are checked too, since the
// guests rely on them (the attacker gives back the page its last act runs from; the kernel maps
// its image read-only page by page below its data page).
// nasm is required: without it this file fails (it does not skip), as test/x86-nasm.test.ts.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assemble } from '../src/core/hardware/x86/index.ts';
import type { AssemblyResult } from '../src/core/hardware/x86/index.ts';

const NASM = process.env.NASM ?? 'nasm';
const GUESTS = fileURLToPath(new URL('../recordings/guests/', import.meta.url));
const EXPECTED = ['attacker.asm', 'bench-compute.asm', 'bench-ctxswitch.asm', 'bench-pagefault.asm', 'kernel.asm'];
/** Every program in the folder is checked, including ones added after these five. */
const FOUND = readdirSync(GUESTS).filter((name) => name.endsWith('.asm')).sort();
/**
 * Guests that take constants from their scenario (`x86.defines`) do not assemble without
 * them; they are checked with the sets of recordings/network.yaml (nasm gets -DNAME=value).
 */
const DEFINES: Readonly<Record<string, readonly Readonly<Record<string, number>>[]>> = {
  'netkernel.asm': [
    { ROLE: 1, MY_IP: 0x0a000001, PEER_IP: 0x0a000002, PEER_MAC: 0x020000000002, COUNT: 16, TIMEOUT: 120 },
    { ROLE: 2, MY_IP: 0x0a000002, PEER_IP: 0x0a000001, PEER_MAC: 0x020000000001, COUNT: 16, TIMEOUT: 140 },
  ],
  'io-attacker.asm': [
    { MY_IP: 0x0a000042, VICTIM_IP: 0x0a000001, VICTIM_MAC: 0x020000000001, REFLECTOR_IP: 0x0a000002, REFLECTOR_MAC: 0x020000000002, HOP_VLAN: 20 },
  ],
  // recordings/long.yaml's sender and echo.
  'longrun.asm': [
    { ROLE: 1, MY_IP: 0x0a000001, PEER_IP: 0x0a000002, PEER_MAC: 0x020000000002, ROUNDS: 0 },
    { ROLE: 2, MY_IP: 0x0a000002, PEER_IP: 0x0a000001, PEER_MAC: 0x020000000001, ROUNDS: 0 },
  ],
};
const NO_DEFINES: readonly Readonly<Record<string, number>>[] = [{}];
const ORIGIN = 0x1000;
const IMAGE_LIMIT = 64 * 1024;
const DOMAIN_BYTES = 1024 * 1024;

const workDirectory = mkdtempSync(join(tmpdir(), 'guests-nasm-'));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

function nasm(path: string, name: string, defines: Readonly<Record<string, number>> = {}): Uint8Array {
  const output = join(workDirectory, `${name}.bin`);
  const predefined = Object.entries(defines).map(([key, value]) => `-D${key}=${value}`);
  // Includes are relative to the guests' folder, for nasm as for the scenario (-i GUESTS).
  const run = spawnSync(NASM, ['-f', 'bin', '-i', GUESTS, '-o', output, ...predefined, path], { encoding: 'utf8' });
  if (run.error) {
    throw new Error(`nasm is required for the guest cross-check but could not be run (${run.error.message}); install it with "apt-get install nasm"`);
  }
  if (run.status !== 0) throw new Error(`nasm rejected ${name}:\n${run.stderr}`);
  return new Uint8Array(readFileSync(output));
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Byte equality; on a difference, the source line that produced the first differing byte. */
function assertSameBytes(name: string, source: string, ours: AssemblyResult, expected: Uint8Array): void {
  if (hex(ours.bytes) === hex(expected)) return;
  let at = 0;
  while (at < expected.length && at < ours.bytes.length && expected[at] === ours.bytes[at]) at += 1;
  const address = ours.origin + at;
  const line = ours.lines.find((entry) => address >= entry.address && address < entry.address + entry.length);
  const text = line === undefined ? '?' : source.split('\n')[line.line - 1]?.trim();
  assert.fail(
    `${name}: ${ours.bytes.length} bytes from our assembler, ${expected.length} from nasm; first difference at ` +
      `offset 0x${at.toString(16)} (line ${line?.line ?? '?'}: "${text}")\n` +
      `  nasm: ${hex(expected.subarray(at, at + 16))}\n  ours: ${hex(ours.bytes.subarray(at, at + 16))}`,
  );
}

function assembleGuest(name: string, defines: Readonly<Record<string, number>> = DEFINES[name]?.[0] ?? {}): { source: string; result: AssemblyResult } {
  const source = readFileSync(join(GUESTS, name), 'utf8');
  const include = (path: string): { file: string; text: string } => ({ file: path, text: readFileSync(join(GUESTS, path), 'utf8') });
  return { source, result: assemble(source, name, defines, include) };
}

function symbol(result: AssemblyResult, name: string): number {
  const value = result.symbols.get(name);
  assert.ok(value !== undefined, `symbol ${name} is defined`);
  return value;
}

describe('guest programs: our assembler and nasm agree byte for byte', () => {
  test('nasm is installed', () => {
    const run = spawnSync(NASM, ['-v'], { encoding: 'utf8' });
    assert.ok(!run.error, `nasm is required for the guest tests: ${run.error?.message}; install it with "apt-get install nasm"`);
    assert.match(run.stdout, /NASM version/);
  });

  test('the guest folder holds the five programs the README describes', () => {
    for (const name of EXPECTED) assert.ok(FOUND.includes(name), `${name} is in recordings/guests/`);
  });

  for (const name of FOUND) {
    (DEFINES[name] ?? NO_DEFINES).forEach((defines, variant) => {
      const label = Object.keys(defines).length === 0 ? '' : ` (defines #${variant + 1})`;
      test(`${name}${label}: identical to nasm -f bin, org 0x1000, under 64 KiB`, () => {
        const { source, result } = assembleGuest(name, defines);
        assert.equal(result.origin, ORIGIN, 'loaded at org 0x1000');
        assert.ok(result.bytes.length > 0, 'not empty');
        assert.ok(result.bytes.length < IMAGE_LIMIT, `${result.bytes.length} bytes must stay under 64 KiB`);
        assert.ok(ORIGIN + result.bytes.length <= DOMAIN_BYTES, 'fits a 1 MiB domain');
        assertSameBytes(name, source, result, nasm(join(GUESTS, name), name, defines));
      });
    });
  }
});

describe('guest programs: layout promises', () => {
  test('kernel: the read-only image ends below the kernel data page at 0x8000', () => {
    const { result } = assembleGuest('kernel.asm');
    assert.ok(ORIGIN + result.bytes.length <= 0x8000);
    assert.equal(symbol(result, 'IMAGE_END_PAGE'), Math.ceil((ORIGIN + result.bytes.length) / 0x1000));
  });

  test('attacker: the last act is alone on the last page of the image, below the data page', () => {
    const { result } = assembleGuest('attacker.asm');
    const lastAct = symbol(result, 'last_act');
    const end = ORIGIN + result.bytes.length;
    assert.equal(lastAct % 0x1000, 0, 'last_act starts a page');
    assert.equal(Math.floor((end - 1) / 0x1000), lastAct / 0x1000, 'nothing follows on another page');
    assert.ok(symbol(result, 'fault_common') < lastAct && symbol(result, 'finish') < lastAct, 'handlers and summary are elsewhere');
    assert.ok(end <= 0x20000, 'image below the data page');
  });

  test('attacker: the end-of-memory text is exactly 16 bytes (copied as 4 dwords for [d34])', () => {
    const { result } = assembleGuest('attacker.asm');
    assert.equal(symbol(result, 'random_bytes') - symbol(result, 'end_of_memory_text'), 16);
  });

  test('benchmarks: images end below their data page at 0x8000', () => {
    for (const name of ['bench-compute.asm', 'bench-ctxswitch.asm', 'bench-pagefault.asm']) {
      const { result } = assembleGuest(name);
      assert.ok(ORIGIN + result.bytes.length <= 0x8000, name);
    }
  });

  test('netkernel, io-attacker and longrun: images end below their data page at 0x8000; they need their defines', () => {
    for (const name of ['netkernel.asm', 'io-attacker.asm', 'longrun.asm']) {
      const { result } = assembleGuest(name);
      assert.ok(ORIGIN + result.bytes.length <= 0x8000, name);
      assert.throws(() => assembleGuest(name, {}), /not defined/, `${name} without defines`);
    }
  });

  test('a too-large image fails to assemble (the size guards work in both assemblers)', () => {
    const source = ['bits 32', 'org 0x1000', 'start:', 'times 0x8000 nop', 'image_end:',
      'times -(((0x7000) - (image_end - $$)) >> 63) db 0', ''].join('\n');
    assert.throws(() => assemble(source, 'too-big.asm'), /TIMES value -1 is negative/);
    const path = join(workDirectory, 'too-big.asm');
    writeFileSync(path, source);
    const run = spawnSync(NASM, ['-f', 'bin', '-o', join(workDirectory, 'too-big.bin'), path], { encoding: 'utf8' });
    assert.notEqual(run.status, 0, 'nasm rejects it too');
    assert.match(run.stderr, /TIMES value -1 is negative/);
  });
});
