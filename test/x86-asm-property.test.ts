// Property tests of the x86 subset:
//  1. random programs assemble to the same bytes as nasm (one nasm run per program);
//  2. disassembling our output gives text that re-assembles (by us and by nasm) to the same
//     bytes, and every instruction boundary of the source falls on a decoded boundary;
//  3. decoding arbitrary bytes never throws and reports a length of 1..15.
// The generator writes NASM source from its own grammar, not from our opcode table, so that
// the table is tested rather than trusted.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import fc from 'fast-check';

import { assemble, AssemblyError, decode, disassemble, formatInstruction, MAX_INSTRUCTION_LENGTH } from '../src/core/hardware/x86/index.ts';

const NASM = process.env.NASM ?? 'nasm';
const workDirectory = mkdtempSync(join(tmpdir(), 'x86-property-'));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

/** nasm's bytes, or its error text when it rejects the source. */
function runNasm(source: string): { bytes: Uint8Array } | { error: string } {
  const input = join(workDirectory, 'input.asm');
  const output = join(workDirectory, 'output.bin');
  writeFileSync(input, source);
  const run = spawnSync(NASM, ['-f', 'bin', '-w-all', '-o', output, input], { encoding: 'utf8' });
  if (run.error) {
    throw new Error(`nasm is required for the x86 property tests but could not be run (${run.error.message}); install it with "apt-get install nasm"`);
  }
  if (run.status !== 0) return { error: run.stderr };
  return { bytes: new Uint8Array(readFileSync(output)) };
}

function nasm(source: string): Uint8Array {
  const result = runNasm(source);
  if ('error' in result) throw new Error(`nasm rejected the source:\n${result.error}\n${source}`);
  return result.bytes;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
/** 50 programs keep the suite fast; raise X86_PROPERTY_RUNS for a longer search. */
const PROGRAM_RUNS = Number(process.env.X86_PROPERTY_RUNS ?? 50);

// ---------------------------------------------------------------------------------------------
// Source generator

const REGISTERS: Readonly<Record<8 | 16 | 32, readonly string[]>> = {
  8: ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'],
  16: ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'],
  32: ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'],
};
const SIZE_NAMES = { 8: 'byte', 16: 'word', 32: 'dword' } as const;
const LABEL_COUNT = 6;
const LABELS = Array.from({ length: LABEL_COUNT }, (_, i) => `L${i}`);
// EQU constants, defined at random places: forward references make NASM's first-pass guesses matter.
const CONSTANTS = ['C0', 'C1', 'C2'];
const CONSTANT_VALUES = ['1', '2', '-1', '0x7f', '0x80', '-0x80', '0x1234', 'L1 - L0', '(L3 - L2) * 2'];

type Size = 8 | 16 | 32;
const sizeArbitrary = fc.constantFrom<Size>(32, 32, 32, 16, 8);
const register = (size: Size) => fc.constantFrom(...REGISTERS[size]);
const label = fc.constantFrom(...LABELS);

/** Immediates of a size, biased to the imm8 boundaries where NASM's choices change. */
function immediate(size: Size): fc.Arbitrary<string> {
  const edges = ['0', '1', '-1', '0x7f', '0x80', '-0x80', '-0x81', '0xff', '0x100'];
  const range = size === 8 ? { min: -128, max: 255 } : size === 16 ? { min: -32768, max: 65535 } : { min: -(2 ** 31), max: 2 ** 32 - 1 };
  const usable = edges.filter((edge) => Number(edge) >= range.min && Number(edge) <= range.max);
  const candidates = [
    fc.constantFrom(...usable),
    fc.integer(range).map(String),
    fc.integer({ min: -128, max: 127 }).map(String),
    fc.constantFrom(...CONSTANTS),
  ];
  if (size === 32) candidates.push(label, fc.tuple(label, label).map(([a, b]) => `${a} - ${b}`));
  return fc.oneof(...candidates);
}

const displacement = fc.oneof(
  fc.constantFrom(0, 1, -1, 0x7f, 0x80, -0x80, -0x81, 0x1000).map((n) => ({ text: String(n), negative: n < 0 })),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => ({ text: String(n), negative: n < 0 })),
  label.map((name) => ({ text: name, negative: false })),
  fc.tuple(label, label).map(([a, b]) => ({ text: `(${a} - ${b})`, negative: false })),
  fc.constantFrom(...CONSTANTS).map((name) => ({ text: name, negative: false })),
);

/** A memory reference with random base, index, scale and displacement, in random term order. */
const address: fc.Arbitrary<string> = fc
  .record({
    base: fc.option(register(32), { freq: 4 }),
    index: fc.option(fc.constantFrom('eax', 'ecx', 'edx', 'ebx', 'ebp', 'esi', 'edi'), { freq: 2 }),
    scale: fc.constantFrom(1, 2, 4, 8, 3, 5, 9),
    scaleFirst: fc.boolean(),
    displacement: fc.option(displacement, { freq: 2 }),
    order: fc.integer({ min: 0, max: 5 }),
    forced: fc.constantFrom('', '', '', 'byte ', 'dword '),
  })
  .map(({ base, index, scale, scaleFirst, displacement: disp, order, forced }) => {
    const terms: string[] = [];
    if (base !== null) terms.push(base);
    // Scales 3, 5 and 9 only exist as NASM's split of a lone index ([eax*3] = [eax+eax*2]).
    const usableScale = base !== null && scale % 2 === 1 && scale > 1 ? 4 : scale;
    if (index !== null) terms.push(scaleFirst ? `${usableScale}*${index}` : `${index}*${usableScale}`);
    if (disp !== null) terms.push(disp.text);
    if (terms.length === 0) terms.push('0x1000');
    const rotated = [...terms.slice(order % terms.length), ...terms.slice(0, order % terms.length)];
    const text = rotated.join('+').replaceAll('+-', '-');
    // A forced displacement size needs a base register, and byte only fits small numbers.
    const byteFits = disp === null || (/^-?\d+$/.test(disp.text) && Math.abs(Number(disp.text)) < 128);
    const prefix = base === null || (forced === 'byte ' && !byteFits) ? '' : forced;
    return `[${prefix}${text}]`;
  });

const sizedAddress = (size: Size) => address.map((text) => `${SIZE_NAMES[size]} ${text}`);
const registerOrMemory = (size: Size) => fc.oneof(register(size), sizedAddress(size));

const ARITHMETIC = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const SHIFTS = ['shl', 'shr', 'sar', 'rol', 'ror', 'sal'];
const UNARY = ['inc', 'dec', 'neg', 'not', 'mul', 'imul', 'div', 'idiv'];
const JCC = ['jo', 'jno', 'jc', 'jnc', 'jz', 'jnz', 'jna', 'ja', 'js', 'jns', 'jpe', 'jpo', 'jl', 'jnl', 'jng', 'jg', 'je', 'jne', 'jb', 'jae', 'jge', 'jle'];
const STRINGS = ['movsb', 'movsw', 'movsd', 'stosb', 'stosw', 'stosd', 'lodsb', 'lodsw', 'lodsd'];
const NULLARY = ['pushad', 'popad', 'pushfd', 'popfd', 'cdq', 'cwd', 'ret', 'int3', 'iretd', 'hlt', 'cpuid', 'rdmsr', 'wrmsr', 'rdtsc', 'cli', 'sti', 'nop', 'pause', 'vmcall'];

const binary = (mnemonics: readonly string[]) =>
  fc.tuple(fc.constantFrom(...mnemonics), sizeArbitrary).chain(([op, size]) =>
    fc.oneof(
      fc.tuple(register(size), register(size)).map(([a, b]) => `${op} ${a}, ${b}`),
      fc.tuple(register(size), address).map(([a, m]) => `${op} ${a}, ${m}`),
      fc.tuple(address, register(size)).map(([m, a]) => `${op} ${m}, ${a}`),
      fc.tuple(registerOrMemory(size), immediate(size)).map(([a, i]) => `${op} ${a}, ${i}`),
    ),
  );

const move = fc.oneof(
  binary(['mov']),
  fc.tuple(fc.constantFrom('al', 'ax', 'eax'), fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(String), label)).chain(([a, target]) =>
    fc.constantFrom(`mov ${a}, [${target}]`, `mov [${target}], ${a}`),
  ),
  fc.tuple(register(32), fc.constantFrom('cr0', 'cr2', 'cr3', 'cr4'), fc.boolean()).map(([r, cr, to]) => (to ? `mov ${cr}, ${r}` : `mov ${r}, ${cr}`)),
  fc.tuple(fc.constantFrom('movzx', 'movsx'), register(32), fc.oneof(register(8), register(16), sizedAddress(8), sizedAddress(16))).map(([op, r, source]) => `${op} ${r}, ${source}`),
  fc.tuple(fc.constantFrom('movzx', 'movsx'), register(16), fc.oneof(register(8), sizedAddress(8))).map(([op, r, source]) => `${op} ${r}, ${source}`),
  fc.tuple(fc.constantFrom<Size>(16, 32), address).chain(([size, m]) => register(size).map((r) => `lea ${r}, ${m}`)),
  sizeArbitrary.chain((size) =>
    fc.oneof(
      fc.tuple(register(size), register(size)).map(([a, b]) => `xchg ${a}, ${b}`),
      fc.tuple(register(size), address, fc.boolean()).map(([r, m, swap]) => (swap ? `xchg ${m}, ${r}` : `xchg ${r}, ${m}`)),
    ),
  ),
);

const stack = fc.oneof(
  fc.tuple(fc.constantFrom('push', 'pop'), fc.oneof(register(32), sizedAddress(32))).map(([op, operand]) => `${op} ${operand}`),
  fc.tuple(fc.constantFrom('', 'dword ', 'strict dword ', 'byte '), immediate(32)).map(([prefix, value]) => {
    const byteFits = /^-?\d+$/.test(value) && Number(value) >= -128 && Number(value) <= 127;
    return `push ${prefix === 'byte ' && !byteFits ? '' : prefix}${value}`;
  }),
);

const arithmetic = fc.oneof(
  binary(ARITHMETIC),
  binary(['test']),
  fc.tuple(fc.constantFrom(...UNARY), sizeArbitrary).chain(([op, size]) => registerOrMemory(size).map((operand) => `${op} ${operand}`)),
  fc.tuple(fc.constantFrom(...SHIFTS), sizeArbitrary).chain(([op, size]) =>
    fc
      .tuple(registerOrMemory(size), fc.oneof(fc.constant('1'), fc.constant('cl'), fc.integer({ min: 0, max: 31 }).map(String), fc.constantFrom(...CONSTANTS)))
      .map(([a, count]) => `${op} ${a}, ${count}`),
  ),
  fc.constantFrom<Size>(16, 32).chain((size) =>
    fc.oneof(
      fc.tuple(register(size), fc.oneof(register(size), address)).map(([a, b]) => `imul ${a}, ${b}`),
      fc.tuple(register(size), fc.oneof(register(size), address), immediate(size)).map(([a, b, i]) => `imul ${a}, ${b}, ${i}`),
      fc.tuple(register(size), immediate(size)).map(([a, i]) => `imul ${a}, ${i}`),
    ),
  ),
);

/** Short branches go to $-relative targets, which are always in range; labels may be anywhere. */
const control = fc.oneof(
  fc.tuple(fc.constantFrom('jmp', 'call', ...JCC), fc.constantFrom('', '', 'near '), label).map(([op, distance, target]) =>
    `${op} ${op === 'call' ? '' : distance}${target}`,
  ),
  fc.tuple(fc.constantFrom('jmp short', 'loop', ...JCC.map((j) => `${j} short`)), fc.integer({ min: -120, max: 120 })).map(([op, delta]) => `${op} $${delta < 0 ? '' : '+'}${delta}`),
  fc.tuple(fc.constantFrom('jmp', 'call'), fc.oneof(register(32), sizedAddress(32), address)).map(([op, target]) => `${op} ${target}`),
  fc.integer({ min: 0, max: 0xffff }).map((n) => `ret ${n}`),
  fc.integer({ min: 0, max: 255 }).map((n) => `int ${n}`),
);

const system = fc.oneof(
  fc.constantFrom(...NULLARY),
  fc.tuple(fc.constantFrom('', 'rep ', 'repne ', 'repe '), fc.constantFrom(...STRINGS)).map(([prefix, op]) => `${prefix}${op}`),
  fc.tuple(fc.constantFrom('al', 'ax', 'eax'), fc.oneof(fc.constant('dx'), fc.integer({ min: 0, max: 255 }).map(String)), fc.boolean()).map(([a, port, output]) =>
    output ? `out ${port}, ${a}` : `in ${a}, ${port}`,
  ),
  fc.tuple(fc.constantFrom('invlpg', 'lidt'), address).map(([op, m]) => `${op} ${m.replace(/^\[(byte|dword) /, '[')}`),
  fc.integer({ min: 1, max: 140 }).map((n) => `times ${n} nop`),
);

const instruction = fc.oneof(move, stack, arithmetic, arithmetic, control, system);

const program = fc
  .record({
    origin: fc.constantFrom(0, 0x1000, 0x7c00, 0x401000, 0x80000000),
    body: fc.array(instruction, { minLength: 10, maxLength: 60 }),
    labelPositions: fc.array(fc.nat(), { minLength: LABEL_COUNT, maxLength: LABEL_COUNT }),
    constantValues: fc.array(fc.constantFrom(...CONSTANT_VALUES), { minLength: CONSTANTS.length, maxLength: CONSTANTS.length }),
    constantPositions: fc.array(fc.nat(), { minLength: CONSTANTS.length, maxLength: CONSTANTS.length }),
  })
  .map(({ origin, body, labelPositions, constantValues, constantPositions }) => {
    const lines = [...body];
    LABELS.forEach((name, i) => lines.splice(labelPositions[i] % (lines.length + 1), 0, `${name}:`));
    CONSTANTS.forEach((name, i) => lines.splice(constantPositions[i] % (lines.length + 1), 0, `${name} equ ${constantValues[i]}`));
    return `bits 32\norg ${origin}\n${lines.join('\n')}\n`;
  });

// ---------------------------------------------------------------------------------------------

describe('x86 properties', () => {
  test('random programs: byte-identical to nasm, and disassembly round-trips', () => {
    let rejected = 0;
    fc.assert(
      fc.property(program, (source) => {
        const reference = runNasm(source);
        if ('error' in reference) {
          // Some generated programs have no solution (an EQU that feeds back into the layout
          // can oscillate): then we must reject them too.
          assert.throws(() => assemble(source, 'random.asm'), AssemblyError, `nasm rejected but we accepted:\n${reference.error}\n${source}`);
          rejected += 1;
          return;
        }
        const ours = assemble(source, 'random.asm');
        assert.equal(hex(ours.bytes), hex(reference.bytes), `differs from nasm for:\n${source}`);

        const lines = disassemble(ours.bytes, ours.origin);
        const undecoded = lines.find((line) => line.text.startsWith('db '));
        assert.equal(undecoded, undefined, `our own output did not decode at 0x${undecoded?.address.toString(16)}`);
        const decodedAddresses = new Set(lines.map((line) => line.address));
        for (const line of ours.lines) {
          assert.ok(decodedAddresses.has(line.address), `source line ${line.line} starts mid-instruction`);
        }

        const listing = `bits 32\norg ${ours.origin}\n${lines.map((line) => line.text).join('\n')}\n`;
        assert.equal(hex(assemble(listing, 'listing.asm').bytes), hex(ours.bytes), `round trip failed:\n${listing}`);
        assert.equal(hex(nasm(listing)), hex(ours.bytes), `nasm reads our disassembly differently:\n${listing}`);
      }),
      { numRuns: PROGRAM_RUNS, includeErrorInReport: true },
    );
    // The generator must mostly produce programs nasm accepts, or the comparison says little.
    assert.ok(rejected <= PROGRAM_RUNS / 5, `${rejected} of ${PROGRAM_RUNS} generated programs were rejected by nasm`);
  });

  const prefixByte = fc.constantFrom(0x66, 0xf2, 0xf3, 0x0f, 0xf0, 0x26, 0x67);
  const biasedBytes = fc
    .tuple(fc.array(prefixByte, { maxLength: 3 }), fc.uint8Array({ minLength: 0, maxLength: 16 }))
    .map(([prefixes, tail]) => Uint8Array.from([...prefixes, ...tail]))
    .filter((bytes) => bytes.length > 0);

  test('decoding arbitrary bytes never throws and stays within 1..15 bytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 16 }), biasedBytes), (bytes) => {
        const result = decode(bytes, 0);
        assert.ok(result.length >= 1 && result.length <= MAX_INSTRUCTION_LENGTH, `length ${result.length}`);
        if (result.kind !== 'instruction') {
          assert.ok(result.kind === 'not-in-subset' || result.kind === 'truncated');
          assert.equal(result.kind === 'truncated', result.length > bytes.length, 'truncated exactly when more bytes were needed');
          return;
        }
        assert.ok(result.length <= bytes.length);
        assert.equal(typeof formatInstruction(result, 0x1000), 'string');
        // The decoder reads exactly `length` bytes: one fewer is truncated, extra bytes are ignored.
        assert.equal(decode(bytes.subarray(0, result.length - 1), 0).kind, 'truncated');
        assert.equal(decode(bytes.subarray(0, result.length), 0).length, result.length);
      }),
      { numRuns: PROGRAM_RUNS * 60, includeErrorInReport: true },
    );
  });
});
