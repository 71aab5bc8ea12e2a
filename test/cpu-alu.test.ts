// Per-instruction results and EFLAGS, worked out by hand from the SDM's "Operation" and
// "Flags Affected" sections (Vol. 2). Each row runs one snippet from a given state and then
// compares the named registers and the six status flags EXACTLY (all of CF PF AF ZF SF OF,
// including the ones the SDM leaves undefined, with the model's documented choice).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { conditionHolds } from '../src/core/hardware/cpu/execute-control.ts';
import { CONDITIONAL_JUMPS } from '../src/core/hardware/x86/index.ts';
import { STATUS, flagNames, flags, hex, prepareSnippet, register, run } from './fixtures/cpu/harness.ts';
import type { RegisterName, SnippetState } from './fixtures/cpu/harness.ts';

interface Row {
  readonly code: string;
  readonly before: SnippetState;
  readonly registers?: Partial<Record<RegisterName, number>>;
  /** The status flags expected set afterwards; every other status flag must be clear. */
  readonly flags: string;
  readonly note?: string;
}

function check(row: Row): void {
  const machine = prepareSnippet(row.code, row.before);
  const result = run(machine);
  assert.deepEqual(result.last, { kind: 'retired', halted: true }, `${row.code}: did not run to HLT`);
  for (const [name, value] of Object.entries(row.registers ?? {})) {
    assert.equal(hex(register(machine, name as RegisterName)), hex(value), `${row.code}: ${name}`);
  }
  assert.equal(flagNames(machine.cpu.eflags & STATUS), flagNames(flags(row.flags)), `${row.code}: status flags`);
  assert.equal(machine.cpu.eflags & 2, 2, 'EFLAGS bit 1 reads 1');
}

function table(rows: readonly Row[]): void {
  for (const row of rows) {
    const state = Object.entries(row.before.registers ?? {}).map(([name, value]) => `${name}=${hex(value)}`).join(' ');
    test(`${row.code.replaceAll('\n', '; ')} from ${state} ${row.before.flags ?? ''}${row.note === undefined ? '' : ` (${row.note})`}`, () => check(row));
  }
}

describe('ADD, ADC, SUB, SBB, CMP', () => table([
  { code: 'add eax, ebx', before: { registers: { eax: 0x7fffffff, ebx: 1 } }, registers: { eax: 0x80000000 }, flags: 'OF SF AF PF', note: 'signed overflow' },
  { code: 'add eax, ebx', before: { registers: { eax: 0xffffffff, ebx: 1 } }, registers: { eax: 0 }, flags: 'CF ZF AF PF', note: 'unsigned carry' },
  { code: 'add al, bl', before: { registers: { eax: 0x1280, ebx: 0x80 } }, registers: { eax: 0x1200 }, flags: 'CF OF ZF PF' },
  { code: 'add ax, bx', before: { registers: { eax: 0xabcd7fff, ebx: 1 } }, registers: { eax: 0xabcd8000 }, flags: 'OF SF AF PF' },
  { code: 'add eax, -1', before: { registers: { eax: 1 } }, registers: { eax: 0 }, flags: 'CF ZF AF PF', note: 'imm8 sign-extended' },
  { code: 'adc eax, ebx', before: { registers: { eax: 0xffffffff, ebx: 0 }, flags: 'CF' }, registers: { eax: 0 }, flags: 'CF ZF AF PF', note: 'carry in wraps' },
  { code: 'adc al, bl', before: { registers: { eax: 0x7f, ebx: 0 }, flags: 'CF' }, registers: { eax: 0x80 }, flags: 'OF SF AF' },
  { code: 'adc eax, ebx', before: { registers: { eax: 0x7fffffff, ebx: 0xffffffff }, flags: 'CF' }, registers: { eax: 0x7fffffff }, flags: 'CF AF PF', note: 'mixed signs never overflow' },
  { code: 'sub eax, ebx', before: { registers: { eax: 0x80000000, ebx: 1 } }, registers: { eax: 0x7fffffff }, flags: 'OF AF PF' },
  { code: 'sub eax, ebx', before: { registers: { eax: 0, ebx: 1 } }, registers: { eax: 0xffffffff }, flags: 'CF SF AF PF', note: 'borrow' },
  { code: 'sbb eax, ebx', before: { registers: { eax: 0, ebx: 0 }, flags: 'CF' }, registers: { eax: 0xffffffff }, flags: 'CF SF AF PF' },
  { code: 'sbb al, bl', before: { registers: { eax: 0x80, ebx: 0 }, flags: 'CF' }, registers: { eax: 0x7f }, flags: 'OF AF' },
  { code: 'sbb eax, ebx', before: { registers: { eax: 5, ebx: 5 }, flags: 'CF' }, registers: { eax: 0xffffffff }, flags: 'CF SF AF PF', note: 'a - a - 1' },
  { code: 'cmp eax, ebx', before: { registers: { eax: 7, ebx: 7 }, flags: 'CF OF' }, registers: { eax: 7 }, flags: 'ZF PF', note: 'CMP does not write' },
  { code: 'cmp al, 0x81', before: { registers: { eax: 0x7f } }, registers: { eax: 0x7f }, flags: 'CF OF SF', note: '0x7f - 0x81 = 0xfe' },
]));

describe('INC, DEC, NEG, NOT', () => table([
  { code: 'inc eax', before: { registers: { eax: 0x7fffffff }, flags: 'CF' }, registers: { eax: 0x80000000 }, flags: 'CF OF SF AF PF', note: 'CF kept' },
  { code: 'inc eax', before: { registers: { eax: 0xffffffff } }, registers: { eax: 0 }, flags: 'ZF AF PF', note: 'no carry out' },
  { code: 'dec eax', before: { registers: { eax: 0x80000000 } }, registers: { eax: 0x7fffffff }, flags: 'OF AF PF' },
  { code: 'dec byte [0x3000]\nmov al, [0x3000]', before: { memory: { 0x3000: 0 }, flags: 'CF' }, registers: { eax: 0xff }, flags: 'CF SF AF PF' },
  { code: 'neg eax', before: { registers: { eax: 0 }, flags: 'CF' }, registers: { eax: 0 }, flags: 'ZF PF', note: 'NEG 0 clears CF' },
  { code: 'neg eax', before: { registers: { eax: 0x80000000 } }, registers: { eax: 0x80000000 }, flags: 'CF OF SF PF', note: 'most negative' },
  { code: 'neg al', before: { registers: { eax: 0x101 } }, registers: { eax: 0x1ff }, flags: 'CF SF AF PF' },
  { code: 'not eax', before: { registers: { eax: 0x0f0f0f0f }, flags: 'CF ZF OF' }, registers: { eax: 0xf0f0f0f0 }, flags: 'CF ZF OF', note: 'no flags' },
]));

describe('AND, OR, XOR, TEST (AF cleared)', () => table([
  { code: 'and eax, ebx', before: { registers: { eax: 0xf0, ebx: 0x0f }, flags: 'CF OF AF SF' }, registers: { eax: 0 }, flags: 'ZF PF' },
  { code: 'or al, 0x80', before: { registers: { eax: 0x01 }, flags: 'CF OF' }, registers: { eax: 0x81 }, flags: 'SF PF' },
  { code: 'xor eax, eax', before: { registers: { eax: 0x1234 }, flags: 'AF' }, registers: { eax: 0 }, flags: 'ZF PF' },
  { code: 'test ax, 0x8000', before: { registers: { eax: 0x8001 } }, registers: { eax: 0x8001 }, flags: 'SF PF', note: 'PF from low byte 0x00' },
]));

describe('shifts and rotates', () => table([
  { code: 'shl eax, cl', before: { registers: { eax: 0x80000000, ecx: 0 }, flags: 'CF ZF' }, registers: { eax: 0x80000000 }, flags: 'CF ZF', note: 'count 0: no flags' },
  { code: 'shl eax, cl', before: { registers: { eax: 0x80000000, ecx: 32 }, flags: 'OF' }, registers: { eax: 0x80000000 }, flags: 'OF', note: 'count 32 masks to 0' },
  { code: 'shl eax, 1', before: { registers: { eax: 0x80000000 } }, registers: { eax: 0 }, flags: 'CF OF ZF PF', note: 'OF = MSB ^ CF' },
  { code: 'shl eax, 1', before: { registers: { eax: 0x40000000 } }, registers: { eax: 0x80000000 }, flags: 'OF SF PF' },
  { code: 'shl eax, 31', before: { registers: { eax: 3 } }, registers: { eax: 0x80000000 }, flags: 'CF SF PF', note: 'CF = bit 1' },
  { code: 'shl eax, cl', before: { registers: { eax: 3, ecx: 33 } }, registers: { eax: 6 }, flags: 'PF', note: 'count 33 masks to 1' },
  { code: 'shr eax, 1', before: { registers: { eax: 0x80000001 } }, registers: { eax: 0x40000000 }, flags: 'CF OF PF', note: 'OF = old MSB' },
  { code: 'shr eax, 31', before: { registers: { eax: 0x80000000 } }, registers: { eax: 1 }, flags: '', note: 'CF = bit 30, OF 0' },
  { code: 'sar eax, 1', before: { registers: { eax: 0x80000001 }, flags: 'OF' }, registers: { eax: 0xc0000000 }, flags: 'CF SF PF', note: 'OF cleared' },
  { code: 'sar eax, 31', before: { registers: { eax: 0x40000000 } }, registers: { eax: 0 }, flags: 'CF ZF PF' },
  { code: 'shl al, cl', before: { registers: { eax: 0xff, ecx: 9 } }, registers: { eax: 0 }, flags: 'ZF PF', note: 'byte shifted past its width: CF 0' },
  { code: 'shl al, cl', before: { registers: { eax: 0x01, ecx: 8 } }, registers: { eax: 0 }, flags: 'CF OF ZF PF', note: 'count = width: CF = bit 0' },
  { code: 'shr ax, cl', before: { registers: { eax: 0x8000, ecx: 16 } }, registers: { eax: 0 }, flags: 'CF ZF PF' },
  { code: 'sar al, cl', before: { registers: { eax: 0x80, ecx: 9 } }, registers: { eax: 0xff }, flags: 'CF SF PF', note: 'sign keeps shifting out' },
  { code: 'rol eax, 1', before: { registers: { eax: 0x80000000 }, flags: 'ZF SF AF PF' }, registers: { eax: 1 }, flags: 'CF OF ZF SF AF PF', note: 'only CF OF written' },
  { code: 'ror eax, 1', before: { registers: { eax: 1 } }, registers: { eax: 0x80000000 }, flags: 'CF OF', note: 'OF = bit31 ^ bit30' },
  { code: 'ror eax, 1', before: { registers: { eax: 3 } }, registers: { eax: 0x80000001 }, flags: 'CF OF' },
  { code: 'rol al, cl', before: { registers: { eax: 0x81, ecx: 8 }, flags: 'OF' }, registers: { eax: 0x81 }, flags: 'CF', note: 'count = width: value kept, CF OF written' },
  { code: 'ror eax, cl', before: { registers: { eax: 0x12345678, ecx: 0 }, flags: 'CF OF' }, registers: { eax: 0x12345678 }, flags: 'CF OF', note: 'count 0' },
  { code: 'rol ax, 4', before: { registers: { eax: 0xffff1234 } }, registers: { eax: 0xffff2341 }, flags: 'CF OF' },
  { code: 'rol eax, 31', before: { registers: { eax: 2 } }, registers: { eax: 1 }, flags: 'CF OF', note: 'OF = MSB ^ CF for any count' },
]));

describe('MUL, IMUL (SF ZF PF from the low half, AF 0)', () => table([
  { code: 'mul ebx', before: { registers: { eax: 0x80000000, ebx: 2 } }, registers: { eax: 0, edx: 1 }, flags: 'CF OF ZF PF' },
  { code: 'mul ebx', before: { registers: { eax: 0xffffffff, ebx: 0xffffffff } }, registers: { eax: 1, edx: 0xfffffffe }, flags: 'CF OF' },
  { code: 'mul bl', before: { registers: { eax: 0x10, ebx: 0x10, edx: 0x77 } }, registers: { eax: 0x100, edx: 0x77 }, flags: 'CF OF ZF PF', note: 'AX = AL * r/m8' },
  { code: 'mul bx', before: { registers: { eax: 0xffff, ebx: 3, edx: 0xabcd0000 } }, registers: { eax: 0xfffd, edx: 0xabcd0002 }, flags: 'CF OF SF' },
  { code: 'imul ebx', before: { registers: { eax: 0xffffffff, ebx: 0xffffffff } }, registers: { eax: 1, edx: 0 }, flags: '', note: '-1 * -1' },
  { code: 'imul ebx', before: { registers: { eax: 0x80000000, ebx: 0x80000000 } }, registers: { eax: 0, edx: 0x40000000 }, flags: 'CF OF ZF PF' },
  { code: 'imul ebx', before: { registers: { eax: 0x7fffffff, ebx: 0xfffffffe } }, registers: { eax: 2, edx: 0xffffffff }, flags: 'CF OF', note: 'high half not the sign extension' },
  { code: 'imul ebx', before: { registers: { eax: 0xfffffffe, ebx: 3 } }, registers: { eax: 0xfffffffa, edx: 0xffffffff }, flags: 'SF PF', note: 'fits: high = sign extension' },
  { code: 'imul bl', before: { registers: { eax: 0x80, ebx: 0xff } }, registers: { eax: 0x0080 }, flags: 'CF OF SF', note: '-128 * -1 = 128 overflows AL' },
  { code: 'imul ax, bx', before: { registers: { eax: 0x8000, ebx: 0xffff } }, registers: { eax: 0x8000 }, flags: 'CF OF SF PF' },
  { code: 'imul eax, ebx', before: { registers: { eax: 0x7fffffff, ebx: 2 } }, registers: { eax: 0xfffffffe }, flags: 'CF OF SF' },
  { code: 'imul ecx, ebx, 0x10000', before: { registers: { ebx: 0x10000 } }, registers: { ecx: 0 }, flags: 'CF OF ZF PF' },
  { code: 'imul ecx, ebx, -3', before: { registers: { ebx: 5 } }, registers: { ecx: 0xfffffff1 }, flags: 'SF' },
]));

describe('DIV, IDIV (flags unchanged), CDQ, CWD', () => table([
  { code: 'div ecx', before: { registers: { edx: 1, eax: 5, ecx: 2 }, flags: 'CF ZF' }, registers: { eax: 0x80000002, edx: 1 }, flags: 'CF ZF' },
  { code: 'div bl', before: { registers: { eax: 0x1234, ebx: 0x56 }, flags: 'SF' }, registers: { eax: 0x1036 }, flags: 'SF', note: 'AL = quotient, AH = remainder' },
  { code: 'div bx', before: { registers: { edx: 0x1, eax: 0x0, ebx: 0x2 } }, registers: { eax: 0x8000, edx: 0 }, flags: '' },
  { code: 'cdq\nidiv ebx', before: { registers: { eax: 0xfffffff9, ebx: 2 } }, registers: { eax: 0xfffffffd, edx: 0xffffffff }, flags: '', note: '-7 / 2 = -3 rem -1' },
  { code: 'cdq\nidiv ebx', before: { registers: { eax: 7, ebx: 0xfffffffe } }, registers: { eax: 0xfffffffd, edx: 1 }, flags: '', note: '7 / -2 = -3 rem 1' },
  { code: 'idiv bl', before: { registers: { eax: 0xff80, ebx: 1 } }, registers: { eax: 0x0080 }, flags: '', note: '-128 / 1 fits' },
  { code: 'cdq', before: { registers: { eax: 0x80000000, edx: 5 } }, registers: { edx: 0xffffffff }, flags: '' },
  { code: 'cwd', before: { registers: { eax: 0x7fff, edx: 0x12345678 } }, registers: { edx: 0x12340000 }, flags: '', note: 'upper EDX kept' },
  { code: 'cwd', before: { registers: { eax: 0x8000, edx: 0x12345678 } }, registers: { edx: 0x1234ffff }, flags: '' },
]));

describe('#DE from DIV and IDIV', () => {
  const cases: [string, SnippetState][] = [
    ['div ebx', { registers: { eax: 1, ebx: 0 } }],
    ['div ebx', { registers: { edx: 1, eax: 0, ebx: 1 } }],
    ['div bl', { registers: { eax: 0x100, ebx: 1 } }],
    ['cdq\nidiv ebx', { registers: { eax: 0x80000000, ebx: 0xffffffff } }],
    ['idiv bl', { registers: { eax: 0x0080, ebx: 1 } }],
    ['idiv bl', { registers: { eax: 0x8000, ebx: 0xff } }],
    ['idiv cx', { registers: { edx: 0x8000, eax: 0, ecx: 0xffff } }],
  ];
  for (const [code, before] of cases) {
    const state = Object.entries(before.registers ?? {}).map(([name, value]) => `${name}=${hex(value)}`).join(' ');
    test(`${code.replaceAll('\n', '; ')} from ${state} raises #DE and leaves the state`, () => {
      const machine = prepareSnippet(code, before);
      const result = run(machine);
      assert.deepEqual(result.last, { kind: 'exception', vector: 0, errorCode: null });
      const faulting = machine.cpu.eip;
      // EIP stays on the dividing instruction (a fault), and no register changed.
      assert.equal(faulting, 0x1000 + (code.startsWith('cdq') ? 1 : 0));
      for (const [name, value] of Object.entries(before.registers ?? {})) {
        if (!(code.startsWith('cdq') && name === 'edx')) assert.equal(register(machine, name as RegisterName), value >>> 0, name);
      }
    });
  }
});

describe('Jcc conditions (SDM Vol. 1, Table B-1)', () => {
  // The textbook definitions, written independently of the interpreter's pairing trick.
  const SPEC: Record<string, (f: Record<string, boolean>) => boolean> = {
    jo: (f) => f.OF, jno: (f) => !f.OF, jc: (f) => f.CF, jnc: (f) => !f.CF, jz: (f) => f.ZF, jnz: (f) => !f.ZF,
    jna: (f) => f.CF || f.ZF, ja: (f) => !f.CF && !f.ZF, js: (f) => f.SF, jns: (f) => !f.SF, jpe: (f) => f.PF, jpo: (f) => !f.PF,
    jl: (f) => f.SF !== f.OF, jnl: (f) => f.SF === f.OF, jng: (f) => f.ZF || f.SF !== f.OF, jg: (f) => !f.ZF && f.SF === f.OF,
  };
  test('all 16 conditions over all 32 combinations of CF PF ZF SF OF', () => {
    const names = ['CF', 'PF', 'ZF', 'SF', 'OF'];
    for (let combination = 0; combination < 32; combination += 1) {
      const set = names.filter((_, bit) => (combination >> bit) & 1);
      const eflags = flags(set.join(' ')) | 2;
      const view = Object.fromEntries(names.map((name) => [name, set.includes(name)]));
      CONDITIONAL_JUMPS.forEach((mnemonic, code) => {
        assert.equal(conditionHolds(eflags, code), SPEC[mnemonic](view), `${mnemonic} with ${set.join(' ')}`);
      });
    }
  });
  test('a taken and a not-taken Jcc in a program', () => {
    const machine = prepareSnippet('cmp eax, 5\njl less\nmov ebx, 1\nless:\ncmp eax, 2\njg done\nmov ecx, 1\ndone:', { registers: { eax: 3 } });
    run(machine);
    assert.equal(register(machine, 'ebx'), 0, 'JL taken');
    assert.equal(register(machine, 'ecx'), 0, 'JG taken');
    const other = prepareSnippet('cmp eax, 5\njl less\nmov ebx, 1\nless:', { registers: { eax: 9 } });
    run(other);
    assert.equal(register(other, 'ebx'), 1, 'JL not taken');
  });
});
