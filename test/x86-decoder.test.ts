// Decoder and disassembler against byte sequences produced by nasm 2.16 (nasm -f bin -l),
// with the expected NASM-syntax text written out by hand.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decode, disassemble, formatInstruction, MAX_INSTRUCTION_LENGTH, registerName } from '../src/core/hardware/x86/index.ts';
import type { DecodeResult, Instruction, MemoryOperand } from '../src/core/hardware/x86/index.ts';

const bytesOf = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replaceAll(' ', ''), 'hex'));

function decodeInstruction(hex: string, offset = 0): Instruction {
  const result = decode(bytesOf(hex), offset);
  assert.equal(result.kind, 'instruction', `${hex}: ${'message' in result ? result.message : ''}`);
  return result as Instruction;
}

// [bytes from nasm's listing, expected disassembly]; the comment is the line nasm assembled.
const NASM_LISTING: readonly (readonly [string, string])[] = [
  ['8b448b10', 'mov eax, [ebx+ecx*4+0x10]'], // mov eax, [ebx+ecx*4+0x10]
  ['8975f8', 'mov [ebp-0x8], esi'], // mov [ebp-8], esi
  ['a000100000', 'mov al, [0x1000]'], // mov al, [0x1000]
  ['a300200000', 'mov [0x2000], eax'], // mov [0x2000], eax
  ['8b0d00100000', 'mov ecx, [0x1000]'], // mov ecx, [0x1000]
  ['bf78563412', 'mov edi, 0x12345678'], // mov edi, 0x12345678
  ['b780', 'mov bh, 0x80'], // mov bh, 0x80
  ['c744240401000000', 'mov dword [esp+0x4], 0x1'], // mov dword [esp+4], 1
  ['c600ff', 'mov byte [eax], 0xff'], // mov byte [eax], 0xff
  ['66c7003412', 'mov word [eax], 0x1234'], // mov word [eax], 0x1234
  ['0f20c0', 'mov eax, cr0'], // mov eax, cr0
  ['0f22db', 'mov cr3, ebx'], // mov cr3, ebx
  ['0f22e0', 'mov cr4, eax'], // mov cr4, eax
  ['0f20d2', 'mov edx, cr2'], // mov edx, cr2
  ['0fb606', 'movzx eax, byte [esi]'], // movzx eax, byte [esi]
  ['0fb7ca', 'movzx ecx, dx'], // movzx ecx, dx
  ['0fbf4302', 'movsx eax, word [ebx+0x2]'], // movsx eax, word [ebx+2]
  ['660fbec3', 'movsx ax, bl'], // movsx ax, bl
  ['8d0440', 'lea eax, [eax+eax*2]'], // lea eax, [eax+eax*2]
  ['8da42400010000', 'lea esp, [esp+0x100]'], // lea esp, [esp+0x100]
  ['8d04cd00100000', 'lea eax, [ecx*8+0x1000]'], // lea eax, [ecx*8+0x1000]
  ['96', 'xchg eax, esi'], // xchg eax, esi
  ['87d9', 'xchg ebx, ecx'], // xchg ebx, ecx
  ['8610', 'xchg dl, [eax]'], // xchg [eax], dl
  ['55', 'push ebp'], // push ebp
  ['6aff', 'push -0x1'], // push -1
  ['6800100000', 'push 0x1000'], // push 0x1000
  ['6810000000', 'push strict dword 0x10'], // push strict dword 16
  ['ff7508', 'push dword [ebp+0x8]'], // push dword [ebp+8]
  ['5f', 'pop edi'], // pop edi
  ['8f00', 'pop dword [eax]'], // pop dword [eax]
  ['60', 'pushad'], // pushad
  ['61', 'popad'], // popad
  ['9c', 'pushfd'], // pushfd
  ['9d', 'popfd'], // popfd
  ['01d8', 'add eax, ebx'], // add eax, ebx
  ['0318', 'add ebx, [eax]'], // add ebx, [eax]
  ['1405', 'adc al, 0x5'], // adc al, 5
  ['1d78563412', 'sbb eax, 0x12345678'], // sbb eax, 0x12345678
  ['83e1f0', 'and ecx, -0x10'], // and ecx, -16
  ['810800010000', 'or dword [eax], 0x100'], // or dword [eax], 0x100
  ['80730180', 'xor byte [ebx+0x1], 0x80'], // xor byte [ebx+1], 0x80
  ['83ec20', 'sub esp, 0x20'], // sub esp, 0x20
  ['3d01000000', 'cmp eax, strict dword 0x1'], // cmp eax, strict dword 1
  ['81fb01000000', 'cmp ebx, strict dword 0x1'], // cmp ebx, strict dword 1
  ['6683c0ff', 'add ax, -0x1'], // add ax, -1
  ['85d8', 'test eax, ebx'], // test eax, ebx
  ['a801', 'test al, 0x1'], // test al, 1
  ['f70000000080', 'test dword [eax], 0x80000000'], // test dword [eax], 0x80000000
  ['41', 'inc ecx'], // inc ecx
  ['ff08', 'dec dword [eax]'], // dec dword [eax]
  ['fe06', 'inc byte [esi]'], // inc byte [esi]
  ['f7da', 'neg edx'], // neg edx
  ['f610', 'not byte [eax]'], // not byte [eax]
  ['d1e0', 'shl eax, 1'], // shl eax, 1
  ['d3eb', 'shr ebx, cl'], // shr ebx, cl
  ['c1381f', 'sar dword [eax], 0x1f'], // sar dword [eax], 31
  ['c0c304', 'rol bl, 0x4'], // rol bl, 4
  ['66d1c8', 'ror ax, 1'], // ror ax, 1
  ['f7e1', 'mul ecx'], // mul ecx
  ['f7eb', 'imul ebx'], // imul ebx
  ['0faf03', 'imul eax, [ebx]'], // imul eax, [ebx]
  ['6bca0a', 'imul ecx, edx, 0xa'], // imul ecx, edx, 10
  ['69c0e8030000', 'imul eax, eax, 0x3e8'], // imul eax, eax, 1000
  ['f630', 'div byte [eax]'], // div byte [eax]
  ['f7fe', 'idiv esi'], // idiv esi
  ['99', 'cdq'], // cdq
  ['6699', 'cwd'], // cwd
  ['c3', 'ret'], // ret
  ['c20800', 'ret 0x8'], // ret 8
  ['cd80', 'int 0x80'], // int 0x80
  ['cc', 'int3'], // int3
  ['cf', 'iretd'], // iretd
  ['ffe0', 'jmp eax'], // jmp eax
  ['ff6004', 'jmp dword [eax+0x4]'], // jmp dword [eax+4]
  ['ff13', 'call dword [ebx]'], // call dword [ebx]
  ['ffd6', 'call esi'], // call esi
  ['f3a4', 'rep movsb'], // rep movsb
  ['f3a5', 'rep movsd'], // rep movsd
  ['f2aa', 'repne stosb'], // repne stosb
  ['ad', 'lodsd'], // lodsd
  ['f366ab', 'rep stosw'], // rep stosw
  ['f4', 'hlt'], // hlt
  ['0fa2', 'cpuid'], // cpuid
  ['e460', 'in al, 0x60'], // in al, 0x60
  ['ed', 'in eax, dx'], // in eax, dx
  ['e680', 'out 0x80, al'], // out 0x80, al
  ['ef', 'out dx, eax'], // out dx, eax
  ['66ed', 'in ax, dx'], // in ax, dx
  ['0f32', 'rdmsr'], // rdmsr
  ['0f30', 'wrmsr'], // wrmsr
  ['0f31', 'rdtsc'], // rdtsc
  ['0f01b800100000', 'invlpg [eax+0x1000]'], // invlpg [eax+0x1000]
  ['0f011d00500000', 'lidt [0x5000]'], // lidt [0x5000]
  ['fa', 'cli'], // cli
  ['fb', 'sti'], // sti
  ['f8', 'clc'], // clc
  ['f9', 'stc'], // stc
  ['f5', 'cmc'], // cmc
  ['fc', 'cld'], // cld
  ['fd', 'std'], // std
  ['90', 'nop'], // nop
  ['f390', 'pause'], // pause
  ['0f01c1', 'vmcall'], // vmcall
  ['8b8304000000', 'mov eax, [dword ebx+0x4]'], // mov eax, [dword ebx+4]
  ['8b4300', 'mov eax, [byte ebx+0x0]'], // mov eax, [byte ebx+0]
  ['8b4500', 'mov eax, [ebp]'], // mov eax, [ebp]
  ['8b0424', 'mov eax, [esp]'], // mov eax, [esp]
  ['8b8300000080', 'mov eax, [ebx-0x80000000]'], // mov eax, [ebx-0x80000000]
];

// Branches assembled by nasm at org 0x401000: [address, bytes, expected text].
const BRANCHES: readonly (readonly [number, string, string])[] = [
  [0x401000, '0f851a000000', 'jnz 0x401020'],
  [0x401006, '74f8', 'jz short 0x401000'],
  [0x401008, 'ebf6', 'jmp short 0x401000'],
  [0x40100a, 'e9f1ffffff', 'jmp 0x401000'],
  [0x40100f, 'e8ecffffff', 'call 0x401000'],
  [0x401014, 'e2ea', 'loop 0x401000'],
  [0x401016, '7f68', 'jg short 0x401080'],
  [0x401018, '0f82e2efffff', 'jc 0x400000'],
  [0x40101e, '7bf0', 'jpo short 0x401010'],
];

describe('decoding nasm output', () => {
  for (const [hex, text] of NASM_LISTING) {
    test(`${hex} is "${text}"`, () => {
      const instruction = decodeInstruction(hex);
      assert.equal(instruction.length, hex.length / 2);
      assert.equal(formatInstruction(instruction, 0), text);
    });
  }

  for (const [address, hex, text] of BRANCHES) {
    test(`${hex} at 0x${address.toString(16)} is "${text}"`, () => {
      const instruction = decodeInstruction(hex);
      assert.equal(instruction.length, hex.length / 2);
      assert.equal(formatInstruction(instruction, address), text);
    });
  }
});

describe('decoded operand descriptors', () => {
  test('ModRM + SIB + disp8: mov eax, [ebx+ecx*4+0x10]', () => {
    const instruction = decodeInstruction('8b448b10');
    assert.equal(instruction.mnemonic, 'mov');
    assert.equal(instruction.operandSize, 32);
    const [destination, source] = instruction.operands;
    assert.deepEqual(destination.kind === 'reg' && registerName(destination.register), 'eax');
    assert.equal(source.kind, 'mem');
    const memory = source as MemoryOperand;
    assert.equal(memory.base && registerName(memory.base), 'ebx');
    assert.equal(memory.index && registerName(memory.index), 'ecx');
    assert.equal(memory.scale, 4);
    assert.equal(memory.displacement, 0x10);
    assert.equal(memory.displacementSize, 8);
    assert.equal(memory.size, 32);
  });

  test('SIB with no base: [eax*4+disp32]', () => {
    const memory = decodeInstruction('8b048500100000').operands[1] as MemoryOperand;
    assert.equal(memory.base, null);
    assert.equal(memory.index && registerName(memory.index), 'eax');
    assert.equal(memory.displacement, 0x1000);
    assert.equal(memory.displacementSize, 32);
  });

  test('negative disp32 is signed', () => {
    const memory = decodeInstruction('8b8300000080').operands[1] as MemoryOperand;
    assert.equal(memory.displacement, -0x80000000);
  });

  test('imm8 sign-extended to the operand size (83 /0)', () => {
    const [, immediate] = decodeInstruction('83c0ff').operands;
    assert.deepEqual(immediate, { kind: 'imm', value: 0xffffffff, size: 32, encodedSize: 8 });
    const [, word] = decodeInstruction('6683c0ff').operands;
    assert.deepEqual(word, { kind: 'imm', value: 0xffff, size: 16, encodedSize: 8 });
  });

  test('prefixes: REP, REPNE, operand size', () => {
    assert.deepEqual(decodeInstruction('f3a4').prefixes, { repeat: 'rep', operandSizeOverride: false });
    assert.deepEqual(decodeInstruction('f2ab').prefixes, { repeat: 'repne', operandSizeOverride: false });
    assert.deepEqual(decodeInstruction('f366a5').prefixes, { repeat: 'rep', operandSizeOverride: true });
    const pause = decodeInstruction('f390');
    assert.equal(pause.mnemonic, 'pause');
    assert.equal(pause.prefixes.repeat, null, 'F3 is part of the PAUSE opcode, not a REP');
  });

  test('relative targets keep the raw displacement', () => {
    assert.deepEqual(decodeInstruction('ebfe').operands, [{ kind: 'rel', displacement: -2, size: 8 }]);
    assert.deepEqual(decodeInstruction('e800010000').operands, [{ kind: 'rel', displacement: 0x100, size: 32 }]);
  });

  test('MOV CRn treats ModRM.mod as a register regardless of its value', () => {
    const instruction = decodeInstruction('0f2018');
    assert.equal(instruction.length, 3);
    assert.equal(formatInstruction(instruction, 0), 'mov eax, cr3');
  });

  test('decoding at an offset', () => {
    const instruction = decodeInstruction('90 90 b8 78 56 34 12', 2);
    assert.equal(formatInstruction(instruction, 0), 'mov eax, 0x12345678');
    assert.equal(instruction.length, 5);
  });
});

function expectError(hex: string, kind: 'not-in-subset' | 'truncated', length: number): void {
  const result: DecodeResult = decode(bytesOf(hex), 0);
  assert.equal(result.kind, kind, `${hex}: got ${result.kind}`);
  assert.equal(result.length, length, `${hex}: length`);
}

describe('bytes outside the subset', () => {
  const cases: readonly (readonly [string, string, number])[] = [
    ['0f05', 'syscall', 2],
    ['f001c0', 'LOCK prefix', 1],
    ['268b00', 'segment override', 1],
    ['678b00', 'address-size override', 1],
    ['d8c0', 'x87', 1],
    ['0f20c8', 'mov eax, cr1 (#UD)', 3],
    ['0f22e8', 'mov cr5, eax (#UD)', 3],
    ['0f01f8', 'swapgs', 3],
    ['0f01d8', '0f 01 /3 with a register (not LIDT)', 3],
    ['8dc0', 'LEA with a register operand (#UD)', 2],
    ['f301c0', 'REP on a non-string instruction', 3],
    ['66e800010000', 'call rel16', 2],
    ['66ffe0', 'jmp r/m16', 3],
    ['6650', 'push r16', 2],
    ['820001', '82 alias of 80', 1],
    ['c0f001', 'group 2 /6', 2],
    ['f6c801', 'test /1 alias', 2],
    ['c6c805', 'C6 /1', 2],
    ['66a4', '0x66 on a byte instruction', 2],
    ['6666 01c0', 'repeated 0x66', 2],
    ['f3f2a4', 'both REP and REPNE', 2],
  ];
  for (const [hex, why, length] of cases) {
    test(`${hex}: ${why}`, () => expectError(hex, 'not-in-subset', length));
  }

  test('truncated input reports how many bytes were needed', () => {
    expectError('8b', 'truncated', 2);
    expectError('b80102', 'truncated', 4);
    expectError('0f', 'truncated', 2);
    expectError('66', 'truncated', 2);
    expectError('8b448b', 'truncated', 4);
    expectError('', 'truncated', 1);
    expectError('c7050010000001', 'truncated', 8);
  });

  test('the architectural maximum is 15 bytes', () => {
    assert.equal(MAX_INSTRUCTION_LENGTH, 15);
    // test dword [ebx+ecx*4+0x10000], 0x12345678: opcode, ModRM, SIB, disp32, imm32.
    const longest = decodeInstruction('f7848b0000010078563412');
    assert.ok(longest.length <= MAX_INSTRUCTION_LENGTH);
  });
});

describe('linear-sweep disassembly', () => {
  test('undecodable bytes become db lines and the sweep resynchronises', () => {
    const lines = disassemble(bytesOf('90 d8 0f b801000000 c3'), 0x1000);
    assert.deepEqual(
      lines.map((line) => [line.address, line.length, line.text]),
      [
        [0x1000, 1, 'nop'],
        [0x1001, 1, 'db 0xd8'],
        [0x1002, 1, 'db 0xf'],
        [0x1003, 5, 'mov eax, 0x1'],
        [0x1008, 1, 'ret'],
      ],
    );
  });
});
