// Cross-check: representative sources covering every mnemonic and addressing form of the
// subset are assembled by nasm and by our assembler, and the bytes must be identical.
// nasm is required: without it this file fails (it does not skip).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { AssemblyError, MNEMONICS, assemble, disassemble } from '../src/core/hardware/x86/index.ts';
import { NASM_INSTRUCTION_WORDS, NASM_NOT_LABEL_WORDS, NASM_RESERVED_WORDS } from '../src/core/hardware/x86/asm/nasm-words.ts';
import { isError, isOrphanWarning, nasmLineMessages, nasmWordLists } from './fixtures/x86/nasm-words.ts';
import { MEMORY_LABEL, formInstances, formsWithoutInstances, wideFormLines } from './fixtures/x86/form-instances.ts';

const NASM = process.env.NASM ?? 'nasm';
const workDirectory = mkdtempSync(join(tmpdir(), 'x86-nasm-'));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

function nasm(source: string): Uint8Array {
  const input = join(workDirectory, 'input.asm');
  const output = join(workDirectory, 'output.bin');
  writeFileSync(input, source);
  const run = spawnSync(NASM, ['-f', 'bin', '-o', output, input], { encoding: 'utf8' });
  if (run.error) {
    throw new Error(`nasm is required for the x86 cross-check tests but could not be run (${run.error.message}); install it with "apt-get install nasm"`);
  }
  if (run.status !== 0) throw new Error(`nasm rejected the source:\n${run.stderr}`);
  return new Uint8Array(readFileSync(output));
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Asserts byte equality and, on a difference, names the source line that produced it. */
function assertSameAsNasm(source: string): void {
  const expected = nasm(source);
  const ours = assemble(source, 'case.asm');
  if (hex(expected) === hex(ours.bytes)) return;
  let at = 0;
  while (at < expected.length && expected[at] === ours.bytes[at]) at += 1;
  const address = ours.origin + at;
  const line = ours.lines.find((entry) => address >= entry.address && address < entry.address + entry.length);
  const text = line === undefined ? '?' : source.split('\n')[line.line - 1];
  const start = line === undefined ? at : line.address - ours.origin;
  const end = line === undefined ? at + 8 : start + line.length;
  assert.fail(
    `first difference at offset 0x${at.toString(16)}, line ${line?.line}: "${text?.trim()}"\n` +
      `  nasm: ${hex(expected.subarray(start, end))}\n  ours: ${hex(ours.bytes.subarray(start, end))}`,
  );
}

const REGISTERS_32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
const REGISTERS_16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'];
const REGISTERS_8 = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];
const ARITHMETIC = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const IMMEDIATES = ['0', '1', '-1', '0x7f', '0x80', '-0x80', '-0x81', '0xff', '0x100', '0xffffff80', '0x12345678'];

const ADDRESSES = [
  '[eax]', '[ebx]', '[esp]', '[ebp]', '[esi+4]', '[edi-4]', '[ebp+0x100]', '[esp+8]', '[esp-0x80]',
  '[eax+ebx]', '[ebx+eax]', '[ebx+ecx*2]', '[esi+edi*4+0x10]', '[ebp+eax*8-0x80]', '[ebp+eax]',
  '[eax+ebp]', '[esp+ebp]', '[ebp+esp]', '[eax*4]', '[eax*4+0x1000]', '[ecx*2]', '[edx*3]',
  '[ebx*5+4]', '[edi*9]', '[eax*1]', '[0x1000]', '[0xffffff00]', '[ebx+0x7fffffff]', '[ebx-0x80000000]',
  '[dword ebx+4]', '[byte ebx+0]', '[dword eax]', '[4+ebx]', '[2*eax+ebx]', '[eax*1+ebx]',
  '[ebx+eax+4+4]', '[esi+edi+(2+2)]', '[ecx+ecx-ecx+ebx]', '[(ebx+ecx)*1]', '[ebx+0xffffffff]',
];

function lines(...parts: (string | string[])[]): string {
  return ['bits 32', ...parts.flat()].join('\n') + '\n';
}

describe('assembler output is byte-identical to nasm -f bin', () => {
  test('nasm is installed', () => {
    const run = spawnSync(NASM, ['-v'], { encoding: 'utf8' });
    assert.ok(!run.error, `nasm is required for the x86 tests: ${run.error?.message}; install it with "apt-get install nasm"`);
    assert.match(run.stdout, /NASM version/);
  });

  test('arithmetic and logic in every encoding', () => {
    const body = ARITHMETIC.flatMap((op) => [
      `${op} eax, ebx`, `${op} bl, ch`, `${op} cx, si`, `${op} [ebx+4], eax`, `${op} eax, [ebx+4]`,
      `${op} [esi], dl`, `${op} dl, [esi]`, `${op} word [eax], 5`,
      ...IMMEDIATES.flatMap((imm) => [`${op} eax, ${imm}`, `${op} ebx, ${imm}`, `${op} dword [ecx], ${imm}`]),
      ...['0', '0x7f', '0xff', '-1'].flatMap((imm) => [`${op} al, ${imm}`, `${op} bh, ${imm}`, `${op} byte [ecx], ${imm}`]),
      ...['1', '0x7f', '0x80', '0xffff', '-0x80'].flatMap((imm) => [`${op} ax, ${imm}`, `${op} di, ${imm}`]),
      `${op} eax, strict dword 5`, `${op} ebx, strict dword 5`, `${op} eax, byte 5`, `${op} [eax], dword 5`,
      `${op} [eax], byte 5`, `${op} [eax], word 500`,
    ]);
    assertSameAsNasm(lines(body));
  });

  test('TEST, INC, DEC, NEG, NOT, MUL, IMUL, DIV, IDIV, CDQ, CWD', () => {
    const body = [
      ...REGISTERS_32.map((r) => `inc ${r}`), ...REGISTERS_32.map((r) => `dec ${r}`),
      ...REGISTERS_16.map((r) => `inc ${r}`), 'inc al', 'dec bh', 'inc dword [eax]', 'dec byte [ebx+ecx]', 'inc word [esi]',
      'test eax, ebx', 'test ebx, eax', 'test [eax], ebx', 'test ebx, [eax]', 'test al, bl', 'test cl, [edx]',
      'test eax, 5', 'test al, 5', 'test ebx, 0x12345678', 'test bl, 0x80', 'test dword [eax], 5', 'test byte [eax], 5', 'test ax, 5',
      ...['neg', 'not', 'mul', 'div', 'idiv', 'imul'].flatMap((op) => [`${op} ecx`, `${op} bl`, `${op} dword [eax+8]`, `${op} byte [esi]`, `${op} dx`]),
      'imul eax, ebx', 'imul ecx, [esi+4]', 'imul eax, 5', 'imul eax, 500', 'imul eax, -128', 'imul eax, ebx, 5',
      'imul eax, ebx, 500', 'imul edx, [ebx], -1', 'imul esi, [eax+ecx*4], 0x12345', 'imul ax, bx, 5', 'imul cx, 0x1234',
      'cdq', 'cwd',
    ];
    assertSameAsNasm(lines(body));
  });

  test('shifts and rotates by 1, CL and imm8', () => {
    const body = ['shl', 'shr', 'sar', 'rol', 'ror', 'sal'].flatMap((op) => [
      `${op} eax, 1`, `${op} eax, cl`, `${op} eax, 5`, `${op} bl, 1`, `${op} bl, cl`, `${op} bl, 7`,
      `${op} dword [eax], 1`, `${op} byte [eax], cl`, `${op} dword [ebx+ecx*2], 31`, `${op} ax, 3`, `${op} word [edi], cl`,
    ]);
    assertSameAsNasm(lines(body));
  });

  test('data movement', () => {
    const body = [
      'mov eax, ebx', 'mov al, bl', 'mov ax, bx', 'mov [eax], ebx', 'mov ebx, [eax]', 'mov [esi+4], cl', 'mov cl, [esi+4]',
      'mov eax, [0x1000]', 'mov al, [0x1000]', 'mov [0x2000], eax', 'mov [0x2000], al', 'mov ax, [0x1000]', 'mov [0x1000], ax',
      'mov ebx, [0x1000]', 'mov [0x1000], ebx', 'mov bl, [0x1000]',
      ...REGISTERS_32.map((r, i) => `mov ${r}, ${i * 0x11111}`), ...REGISTERS_8.map((r, i) => `mov ${r}, ${i * 17}`),
      'mov ax, 5', 'mov eax, -1', 'mov dword [eax], 5', 'mov [eax], dword 5', 'mov word [eax], 5', 'mov byte [eax], 5',
      'mov [eax], byte 5', 'mov dword [ebp-8], 0x12345678',
      'mov eax, cr0', 'mov ebx, cr2', 'mov ecx, cr3', 'mov edx, cr4', 'mov cr0, eax', 'mov cr3, ebx', 'mov cr4, esi', 'mov cr2, edi',
      'movzx eax, bl', 'movzx eax, bx', 'movzx ax, bl', 'movzx eax, byte [ebx]', 'movzx ecx, word [esi+2]', 'movzx si, byte [eax]',
      'movsx eax, bl', 'movsx eax, bx', 'movsx ax, bl', 'movsx edx, byte [ebx]', 'movsx edi, word [esp+4]',
      'lea eax, [ebx+ecx*4+0x10]', 'lea esi, [esi]', 'lea eax, [eax*2]', 'lea edx, [ebp-4]', 'lea ax, [eax+1]', 'lea eax, [0x1000]',
      'xchg eax, ecx', 'xchg ecx, eax', 'xchg eax, eax', 'xchg ebx, ecx', 'xchg ecx, ebx', 'xchg [eax], ebx', 'xchg ebx, [eax]',
      'xchg al, bl', 'xchg [esi], cl', 'xchg ax, cx', 'xchg cx, ax', 'xchg si, di', 'xchg ax, ax',
      ...REGISTERS_32.map((r) => `push ${r}`), ...REGISTERS_32.map((r) => `pop ${r}`),
      'push 5', 'push -1', 'push 0x80', 'push 0x12345678', 'push dword 5', 'push strict dword 5', 'push byte 5',
      'push dword [eax]', 'push dword [esp+4]', 'pop dword [eax]', 'pop dword [ebx+ecx*8]',
      'pushad', 'popad', 'pusha', 'popa', 'pushfd', 'popfd', 'pushf', 'popf',
    ];
    assertSameAsNasm(lines(body));
  });

  test('every addressing form', () => {
    const body = ADDRESSES.flatMap((address) => [`mov eax, ${address}`, `mov ${address}, cl`, `lea esi, ${address}`, `inc dword ${address}`]);
    assertSameAsNasm(lines(body));
  });

  test('control transfer: short/near selection, calls, returns, LOOP, INT, IRETD', () => {
    const jcc = ['jo', 'jno', 'jc', 'jnc', 'jz', 'jnz', 'jna', 'ja', 'js', 'jns', 'jpe', 'jpo', 'jl', 'jnl', 'jng', 'jg'];
    const aliases = ['jb', 'jnae', 'jae', 'jnb', 'je', 'jne', 'jbe', 'jnbe', 'jp', 'jnp', 'jnge', 'jge', 'jle', 'jnle'];
    const source = lines(
      'org 0x401000',
      'start:',
      'jmp short start',
      [...jcc, ...aliases].map((j) => `${j} start`),
      [...jcc, ...aliases].map((j) => `${j} far_away`),
      'jmp start', 'jmp far_away', 'jmp near start', 'jz near start', 'jmp $', 'jmp $+2', 'jz short $+2',
      'jmp 0x401000', 'jz 0x401000', 'jmp short 0x401010', 'call start', 'call far_away', 'call 0x12345678',
      'jmp eax', 'jmp [eax]', 'jmp dword [ebx+4]', 'call ecx', 'call [esi]', 'call dword [0x1000]',
      '.loop: dec ecx', 'loop .loop', 'loop $', 'jnz .loop',
      'ret', 'ret 4', 'ret 0', 'ret 0xffff', 'int 0x80', 'int 3', 'int3', 'iretd', 'iret',
      'times 130 nop',
      'near_edge:',
      'jmp start',
      'times 0x70 nop',
      'far_away: jmp near_edge',
      'jz start',
    );
    assertSameAsNasm(source);
  });

  test('jump optimisation reaches the same fixed point as nasm', () => {
    // Each jump's size depends on the others: a chain that only settles after several passes.
    const chain = Array.from({ length: 40 }, (_, i) => [`l${i}: jz l${(i + 7) % 40}`, `times ${(i * 13) % 9} nop`, `jmp l${(i + 33) % 40}`]);
    assertSameAsNasm(lines('org 0x1000', chain.flat()));
  });

  test("forward references get nasm's first-pass guesses", () => {
    // Each case sits on the edge where a different first-pass guess would change a later
    // jump from short to near (the passes converge to a different layout).
    const cases = [
      ['push K', 'jmp L0', 'times 126 nop', 'L0:', 'K equ 5'], // unknown immediate: assumed imm8
      ['mov eax, [ebx+K]', 'jmp L0', 'times 126 nop', 'L0:', 'K equ 5'], // unknown displacement: assumed 32-bit
      ['shl eax, K', 'jmp L0', 'times 127 nop', 'L0:', 'K equ 1'], // unknown shift count: assumed 1
      ['shl eax, K', 'jmp L0', 'times 127 nop', 'L0:', 'K equ 2'],
      ['push L1 - L0', 'jmp L2', 'times 126 nop', 'L2:', 'L0: times 200 nop', 'L1:'], // unknowns cancel to 0
      ['times L1 - L0 nop', 'L0: nop', 'L1:'],
      ['L0:', 'C equ (L1 - L0) * 2', 'push dword [eax+C]', 'times 58 nop', 'L1:'], // unknown EQU is 0 in pass 1
    ];
    for (const body of cases) assertSameAsNasm(lines(body));
  });

  test('string instructions and REP prefixes', () => {
    const body = ['movsb', 'movsw', 'movsd', 'stosb', 'stosw', 'stosd', 'lodsb', 'lodsw', 'lodsd'].flatMap((op) => [
      op, `rep ${op}`, `repe ${op}`, `repz ${op}`, `repne ${op}`, `repnz ${op}`,
    ]);
    assertSameAsNasm(lines(body));
  });

  test('system instructions', () => {
    const body = [
      'hlt', 'cpuid', 'rdmsr', 'wrmsr', 'rdtsc', 'cli', 'sti', 'nop', 'pause', 'vmcall',
      'in al, 0x60', 'in eax, 0x60', 'in ax, 0x60', 'in al, dx', 'in eax, dx', 'in ax, dx',
      'out 0x80, al', 'out 0x80, eax', 'out 0x80, ax', 'out dx, al', 'out dx, eax', 'out dx, ax',
      'invlpg [eax]', 'invlpg [ebx+ecx*4+0x1000]', 'invlpg [0x400000]', 'lidt [eax]', 'lidt [idt_descriptor]',
      'idt_descriptor: dw 0x7ff', 'dd 0x10000',
    ];
    assertSameAsNasm(lines(body));
  });

  test('directives, expressions, labels and data', () => {
    const source = lines(
      'org 0x7c00',
      'SIZE equ 4 * (2 + 3)',
      'MASK equ ~0xf & 0xff',
      'start:',
      '  mov eax, SIZE',
      '  mov ebx, MASK | 1 << 8',
      '  mov ecx, (SIZE - 4) / 2 + 7 % 3',
      '  mov edx, -7 // 2',
      '  mov esi, -7 %% 2',
      '  mov edi, -1 >> 60',
      "  mov al, 'A'",
      "  mov eax, 'abcd'",
      '  mov eax, 0FFh + 10b + 17q + 0x1_0 + 0b101 + 0o17 + 12d + 0ah',
      '  mov eax, $',
      '  mov eax, $$',
      '  mov eax, $ - $$',
      '  mov eax, end - start',
      '  mov eax, [table + 4]',
      '  mov ebx, [ebx + table]',
      '  mov ecx, [ecx + (end - start)]',
      '  push table',
      '  push end - start',
      '  add eax, table',
      '  add eax, end - table',
      '  mov eax, forward_constant',
      '  mov eax, [ebx + forward_constant]',
      '.local: jmp .local',
      'other:',
      '.local: jmp .local',
      '  jmp start.local',
      'forward_constant equ 12',
      'table: dd start, other, other.local, 0x12345678, -1',
      "  db 'hello', 0, \"world\", 10, `tab\\there\\n`",
      "  dw 'abc', 0x1234, -2",
      "  dd 'ab', 'abcde'",
      '  times 3 dd $',
      '  times 4 db 0xcc',
      '  times 2 push eax',
      'label_without_colon nop',
      '[bits 32]',
      'end:',
      "  times 0x200 - ($ - $$) db 0",
    );
    assertSameAsNasm(source);
  });

  test('align: NOP padding, any fill, and jump sizes that depend on the padding', () => {
    const fills = ['', ', db 0', ', db 0xcc, 0xdd', ', int3', ', nop', ', dw 0x1234', ', dd 0', ', mov eax, 1', ', jmp $'];
    const body = [0, 1, 2, 3, 5, 7].flatMap((start) => [1, 2, 4, 8, 16, 4096].flatMap((boundary) =>
      fills.map((fill) => `times ${start} db 1\nALIGN ${boundary}${fill} ; comment`)));
    assertSameAsNasm(lines('org 0x1000', body));
    // A jump over padding: the padding depends on the jump's size, the jump's size on the padding.
    const chain = Array.from({ length: 24 }, (_, i) => [`l${i}: jz l${(i + 5) % 24}`, `times ${(i * 7) % 5} nop`, `align ${[2, 4, 8, 16][i % 4]}`, `jmp l${(i + 19) % 24}`]);
    assertSameAsNasm(lines('org 0x10000', chain.flat(), 'K equ 32', 'align K', 'end: align 64, db 0'));
  });

  test('every form of the opcode table, in each operand size, with each operand kind it takes', () => {
    const instances = formInstances();
    assert.deepEqual(formsWithoutInstances(instances), [], 'forms the generator (test/fixtures/x86/form-instances.ts) wrote no instruction for');
    const source = lines('org 0x1000', `${MEMORY_LABEL} equ 0x1000`, instances.map((instance) => instance.text));
    assertSameAsNasm(source);
    // The disassembly of all of it is text nasm turns back into the same bytes.
    const bytes = assemble(source).bytes;
    const listing = disassemble(bytes, 0x1000);
    assert.ok(listing.every((line) => !line.text.startsWith('db ')), 'every instance decodes');
    assert.equal(hex(nasm(lines('org 0x1000', listing.map((line) => line.text)))), hex(bytes));
  });

  test('every form with every register, memory with and without a size, boundary and sized immediates: accepted and refused as by nasm', () => {
    const code = wideFormLines();
    const said = nasmLineMessages(['org 0x1000', 'K equ 5', ...code, 'lbl: nop']).slice(2, -1);
    const accepted = code.filter((line, i) => {
      let ours = true;
      try {
        assemble(`bits 32\norg 0x1000\nK equ 5\n${line}\nlbl: nop\n`);
      } catch (error) {
        if (!(error instanceof AssemblyError)) throw error;
        ours = false;
      }
      assert.equal(ours, !isError(said[i]), `"${line}": nasm said ${JSON.stringify(said[i])}; ours ${ours ? 'accepts it' : 'refuses it'}`);
      return ours;
    });
    assertSameAsNasm(lines('org 0x1000', 'K equ 5', accepted, 'lbl: nop'));
  });

  test('16-bit operand-size forms', () => {
    const body = [
      'mov ax, bx', 'mov cx, [eax]', 'mov [eax], dx', 'mov si, 0x1234', 'mov word [ebx], 0xffff',
      'add ax, bx', 'sub cx, [esi]', 'and [edi], bx', 'or ax, 0x100', 'xor dx, 7', 'cmp word [eax], -1',
      'test ax, bx', 'test si, 0x8000', 'shl ax, 1', 'sar dx, cl', 'rol word [eax], 4',
      'mul cx', 'imul ax, [ebx]', 'div word [esi]', 'neg si', 'not word [eax]', 'lea ax, [ebx+ecx]',
      'cwd', 'movsw', 'rep stosw', 'lodsw',
    ];
    assertSameAsNasm(lines(body));
  });
});

// ---- a word alone at the start of a line ----------------------------------------------------

describe('a word at the start of a line is read as nasm reads it', () => {
  test("the assembler's lists of NASM's reserved, not-a-label and instruction words are nasm's own readings", () => {
    const lists = nasmWordLists();
    assert.deepEqual([...NASM_RESERVED_WORDS].sort(), lists.reserved);
    assert.deepEqual([...NASM_NOT_LABEL_WORDS].sort(), lists.notLabel);
    assert.deepEqual([...NASM_INSTRUCTION_WORDS].sort(), lists.instruction);
  });

  type Ours = { error: string } | { warned: boolean };
  function ours(line: string): Ours {
    try {
      return { warned: assemble(`bits 32\n${line}\n`).warnings.length > 0 };
    } catch (error) {
      if (error instanceof AssemblyError) return { error: error.detail };
      throw error;
    }
  }

  // A directive without its operand: nasm's macro does not match and it falls back to a label
  // (with a warning about the macro); we refuse it, which can only be stricter.
  const DIRECTIVES_REFUSED_ALONE = new Set(['org', 'bits', 'align']);

  test('refused where nasm refuses or reads an instruction we lack, warned where nasm warns, the same bytes elsewhere', () => {
    const sample = (set: ReadonlySet<string>, every: number): string[] => [...set].filter((_, i) => i % every === 0);
    const words = [...new Set([
      ...MNEMONICS, 'jb', 'je', 'sal', 'iret', 'pusha', 'rep', 'repne', 'db', 'dd', 'times', 'equ', ...DIRECTIVES_REFUSED_ALONE,
      ...NASM_RESERVED_WORDS, ...NASM_NOT_LABEL_WORDS, ...sample(NASM_INSTRUCTION_WORDS, 7),
      'foo', 'clc2', 'ptr', 'evex', 'section', 'bar_1', 'constructor', 'toString', 'Clc', 'LAHF', 'Cwde', 'Foo', 'Eax', 'BYTE', 'Rep',
    ])];
    const variants: ((word: string) => string)[] = [(w) => w, (w) => `${w}:`, (w) => `${w} nop`, (w) => `$${w}`, (w) => `  ${w} ; why`];
    for (const variant of variants) {
      const cases = words.map(variant);
      const said = nasmLineMessages(cases);
      const agreed: string[] = [];
      cases.forEach((line, i) => {
        const mine = ours(line);
        const context = `"${line}": nasm said ${JSON.stringify(said[i])}, ours ${JSON.stringify(mine)}`;
        if (isError(said[i])) assert.ok('error' in mine, `refused by nasm, so by us: ${context}`);
        else if (isOrphanWarning(said[i]) && !DIRECTIVES_REFUSED_ALONE.has(words[i])) assert.deepEqual(mine, { warned: true }, `a label with a warning: ${context}`);
        else if (!('error' in mine)) {
          assert.equal(mine.warned, isOrphanWarning(said[i]), `warned exactly when nasm warns: ${context}`);
          agreed.push(line);
        }
      });
      // Whatever both accept, both assemble to the same bytes.
      assertSameAsNasm(lines(agreed));
    }
  });
});
