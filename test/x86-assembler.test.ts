// Assembler behaviour that does not need nasm: error positions, symbols, the source map,
// and determinism. Byte-level agreement with nasm is checked in x86-nasm.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { assemble, AssemblyError, formatWarning } from '../src/core/hardware/x86/index.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function assertError(source: string, line: number, column: number, message: RegExp): void {
  assert.throws(
    () => assemble(source, 'guest.asm'),
    (error: unknown) => {
      assert.ok(error instanceof AssemblyError, `expected an AssemblyError, got ${String(error)}`);
      assert.deepEqual(error.location, { file: 'guest.asm', line, column });
      assert.match(error.detail, message);
      assert.equal(error.message, `guest.asm:${line}:${column}: ${error.detail}`);
      return true;
    },
  );
}

describe('assembler errors carry file:line:column', () => {
  test('unknown mnemonic', () => assertError('bits 32\n  movq eax, 1\n', 2, 3, /unknown instruction or directive 'movq'/));
  test('instruction before "bits 32"', () => assertError('nop\n', 1, 1, /bits 32/));
  test('only bits 32', () => assertError('bits 16\n', 1, 1, /only "bits 32"/));
  test('undefined symbol', () => assertError('bits 32\njmp nowhere\n', 2, 5, /symbol 'nowhere' not defined/));
  test('short jump out of range', () => assertError('bits 32\nl: times 200 nop\nloop l\n', 3, 6, /short jump is out of range/));
  test('explicit short jump out of range', () => assertError('bits 32\njmp short l\ntimes 200 nop\nl:\n', 2, 5, /out of range/));
  test('operation size not specified', () => assertError('bits 32\ninc [eax]\n', 2, 5, /operation size not specified/));
  test('invalid combination', () => assertError('bits 32\nmov eax, bl\n', 2, 1, /invalid combination of opcode and operands/));
  test('CL does not size a shifted memory operand', () => assertError('bits 32\nshl [eax], cl\n', 2, 5, /operation size not specified/));
  test('mismatched sizes', () => assertError('bits 32\nmov eax, byte [ebx]\n', 2, 1, /invalid combination/));
  test('ESP as an index', () => assertError('bits 32\nmov eax, [eax+esp*2]\n', 2, 10, /ESP cannot be an index/));
  test('scale 3 with a base', () => assertError('bits 32\nmov eax, [ebx+ecx*3]\n', 2, 10, /scale must be 1, 2, 4 or 8/));
  test('16-bit addressing is not in the subset', () => assertError('bits 32\nmov eax, [bx]\n', 2, 10, /32-bit general registers/));
  test('three registers', () => assertError('bits 32\nmov eax, [eax+ebx+ecx]\n', 2, 10, /more than two registers/));
  test('label redefined', () => assertError('bits 32\na: nop\na: nop\n', 3, 1, /symbol 'a' redefined/));
  test('TIMES past the output limit fails at once', () => assertError('bits 32\ntimes 0x7fffffff nop\n', 2, 1, /output too large/));
  test('negative TIMES', () => assertError('bits 32\ntimes -1 nop\n', 2, 1, /negative/));
  test('TIMES on a forward reference', () => assertError('bits 32\ntimes x nop\nx:\n', 2, 1, /non-constant argument supplied to TIMES/));
  test('division by zero', () => assertError('bits 32\nmov eax, 1/0\n', 2, 11, /division by zero/));
  test('org twice', () => assertError('bits 32\norg 0\norg 1\n', 3, 1, /origin redefined/));
  test('register in an immediate', () => assertError('bits 32\nmov eax, ebx+1\n', 2, 10, /register/));
  test('label times two', () => assertError('bits 32\nl: mov eax, l*2\n', 2, 13, /not a plain number or a single address/));
  test('align to a boundary that is not a power of two', () => assertError('bits 32\ndb 1\nalign 3\n', 3, 1, /alignment 3 is not a power of two/));
  test('align to a forward reference', () => assertError('bits 32\nalign N\nN equ 4\n', 2, 1, /non-constant argument supplied to ALIGN/));
  test('align with a fill that is not one instruction', () => assertError('bits 32\nalign 4, times 2 nop\n', 2, 10, /FILL must be one instruction or data directive/));
  test('align after an org that is not a multiple (NASM moves the image)', () => assertError('bits 32\norg 0x1001\nalign 4\n', 3, 1, /make org a multiple of 4/));
  test('MOVZX r32 from unsized memory (byte or word?)', () => assertError('bits 32\nmovzx eax, [ebx]\n', 2, 12, /operation size not specified/));
  test('SHORT on a jump that has no near form', () => assertError('bits 32\nloop short $\n', 2, 1, /invalid combination/));
  test('REP on a non-string instruction', () => assertError('bits 32\nrep add eax, ebx\n', 2, 5, /string instruction/));
  test('unterminated string', () => assertError("bits 32\ndb 'abc\n", 2, 4, /unterminated string/));
  test('bad digit', () => assertError('bits 32\nmov eax, 12z\n', 2, 10, /invalid digit/));
  test('16-bit push is outside the subset', () => assertError('bits 32\npush ax\n', 2, 1, /invalid combination/));
});

describe('assembler results', () => {
  test('symbols are final addresses and EQU values', () => {
    const result = assemble('bits 32\norg 0x7c00\nstart: nop\n.inner: nop\nCOUNT equ 3 * 4\n', 'boot.asm');
    assert.equal(result.origin, 0x7c00);
    assert.deepEqual([...result.symbols], [['start', 0x7c00], ['start.inner', 0x7c01], ['COUNT', 12]]);
  });

  test('the source map gives each line its address and length', () => {
    const result = assemble('bits 32\norg 0x1000\nmov eax, 1\n\nlabel:\ntimes 3 nop\ndb 1, 2\n');
    assert.deepEqual(result.lines, [
      { line: 3, address: 0x1000, length: 5 },
      { line: 6, address: 0x1005, length: 3 },
      { line: 7, address: 0x1008, length: 2 },
    ]);
  });

  test('comments, blank lines, case-insensitive mnemonics and registers', () => {
    const result = assemble('BITS 32 ; mode\n\n  MOV EAX, EBX ; copy\n\tNop\n');
    assert.equal(hex(result.bytes), '89d890');
  });

  test('assembling twice gives the same bytes (no hidden state)', () => {
    const source = 'bits 32\nl: jmp m\ntimes 100 nop\nm: jz l\n';
    assert.equal(hex(assemble(source).bytes), hex(assemble(source).bytes));
  });

  test('MOVZX/MOVSX r16 from unsized memory: a word is extended only from a byte, as NASM reads it', () => {
    assert.equal(hex(assemble('bits 32\nmovzx ax, [ebx]\nmovsx di, [eax+4]\n').bytes), '660fb603660fbe7804');
  });

  test('object keys are not mnemonics', () => {
    assertError('bits 32\ntoString eax\n', 2, 1, /unknown instruction or directive 'toString'/);
    assertError('bits 32\nx: constructor\n', 2, 4, /unknown instruction or directive 'constructor'/);
  });

  test('a label without a colon before an instruction or alone', () => {
    const result = assemble('bits 32\nfirst nop\nsecond\ndd first, second\n');
    assert.equal(hex(result.bytes), '900000000001000000');
  });

  test("a label alone on a line without a colon gets NASM's label-orphan warning, at its position", () => {
    const result = assemble('bits 32\nfirst nop\n  second\nthird:\n$fourth\ndd second\n', 'guest.asm');
    assert.deepEqual(result.warnings.map(formatWarning), [
      'guest.asm:3:3: warning: label alone on a line without a colon might be in error [-w+label-orphan]',
      'guest.asm:5:1: warning: label alone on a line without a colon might be in error [-w+label-orphan]',
    ]);
    assert.equal(hex(result.bytes), '9001000000');
  });

  test('an instruction NASM has but the subset lacks is refused, not taken for a label', () => {
    assertError('bits 32\nnop\nlahf\n', 3, 1, /unknown instruction or directive 'lahf' \(NASM has it; it is outside the modelled subset\)/);
    assertError('bits 32\n  Cwde\n', 2, 3, /'Cwde' \(NASM has it/);
    assertError('bits 32\nlahf nop\n', 2, 1, /'lahf' \(NASM has it/);
    assertError('bits 32\ntimes 2 lahf\n', 2, 9, /'lahf' \(NASM has it/);
    assert.equal(hex(assemble('bits 32\nlahf: jmp lahf\n').bytes), 'ebfe', 'with a colon it is a label, as in NASM');
  });

  test('a register or keyword alone is no label', () => {
    assertError('bits 32\nbyte\n', 2, 1, /label or instruction expected at start of line: 'byte' is a register or keyword/);
    assertError('bits 32\nxmm0:\n', 2, 1, /label or instruction expected/);
    assertError('bits 32\neax: nop\n', 2, 1, /label or instruction expected/);
  });
});
