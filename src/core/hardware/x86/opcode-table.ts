// The subset of IA-32 this project models, as one table of forms in the style of NASM's
// insns.dat. The decoder indexes it by opcode; the assembler walks a mnemonic's forms in
// table order and takes the first that matches, so the ORDER of forms of one mnemonic is the
// order of NASM's preferences (checked against nasm itself by test/x86-nasm.test.ts).
//
// Operand shorthand (SDM Vol. 2, Appendix A.2): Eb/Ev/Ed/Ew, Gb/Gv/Gd, M, Ms (6-byte
// pseudo-descriptor), Rd, Cd, Zb/Zv/Zd (+r), Ib/Iw/Iv, Ibs (imm8 sign-extended), Jb/Jz,
// Ob/Ov (moffs), AL, eAX, CL, DX, 1.
// Encoding shorthand: hex opcode bytes, then "/r", "/0".."/7", "+r", or "=xx" (a fixed ModRM byte).

import { CONDITIONAL_JUMPS, MNEMONICS } from './instruction.ts';
import type { Form, Mnemonic, ModrmUse, OperandPattern, SizeCode } from './instruction.ts';

interface FormOptions {
  readonly sizes?: readonly (16 | 32)[];
  readonly mandatoryPrefix?: number;
  readonly repeatable?: boolean;
  readonly assemblerOnly?: boolean;
  readonly registerAlsoInRm?: boolean;
  readonly memorySizeImplied?: readonly (16 | 32)[];
  readonly immediateSetsSize?: boolean;
}

const FIXED_REGISTERS: Readonly<Record<string, OperandPattern>> = {
  AL: { type: 'fixed', size: 'b', number: 0 },
  eAX: { type: 'fixed', size: 'v', number: 0 },
  CL: { type: 'fixed', size: 'b', number: 1 },
  DX: { type: 'fixed', size: 'w', number: 2 },
};

function parseOperandPattern(text: string): OperandPattern {
  const fixed = FIXED_REGISTERS[text];
  if (fixed !== undefined) return fixed;
  if (text === '1') return { type: 'one' };
  if (text === 'Ibs') return { type: 'Ibs' };
  if (text === 'Rd') return { type: 'R' };
  if (text === 'Cd') return { type: 'C' };
  if (text === 'M') return { type: 'M', bytes: 0 };
  if (text === 'Ms') return { type: 'M', bytes: 6 };
  if (text === 'Jb') return { type: 'J', size: 'b' };
  if (text === 'Jz') return { type: 'J', size: 'z' };
  const letter = text[0];
  const size = text.slice(1);
  const sized = letter === 'E' || letter === 'G' || letter === 'Z' || letter === 'I' || letter === 'O';
  if (!sized || !isSizeCode(size)) throw new Error(`opcode table: bad operand pattern ${text}`);
  return { type: letter, size };
}

function isSizeCode(text: string): text is SizeCode {
  return text === 'b' || text === 'w' || text === 'd' || text === 'v';
}

function usesOperandSize(pattern: OperandPattern): boolean {
  if (pattern.type === 'Ibs') return true;
  return 'size' in pattern && pattern.size === 'v';
}

interface ParsedEncoding {
  readonly opcode: number[];
  readonly modrm: ModrmUse;
  readonly plusRegister: boolean;
}

function parseEncoding(text: string): ParsedEncoding {
  const opcode: number[] = [];
  let modrm: ModrmUse = { kind: 'none' };
  let plusRegister = false;
  for (const word of text.split(' ')) {
    if (word === '/r') modrm = { kind: 'r' };
    else if (/^\/[0-7]$/.test(word)) modrm = { kind: 'digit', digit: Number(word[1]) };
    else if (word.startsWith('=')) modrm = { kind: 'fixed', value: parseInt(word.slice(1), 16) };
    else if (word.endsWith('+r')) {
      opcode.push(parseInt(word.slice(0, -2), 16));
      plusRegister = true;
    } else opcode.push(parseInt(word, 16));
  }
  if (opcode.some((byte) => !(byte >= 0 && byte <= 0xff))) throw new Error(`opcode table: bad encoding ${text}`);
  return { opcode, modrm, plusRegister };
}

/** A form before it has its place in FORMS. */
type FormEntry = Omit<Form, 'index'>;

function form(mnemonic: Mnemonic, operandText: string, encodingText: string, options: FormOptions = {}): FormEntry {
  const operands = operandText === '' ? [] : operandText.split(',').map(parseOperandPattern);
  const encoding = parseEncoding(encodingText);
  const defaultSizes: readonly (16 | 32)[] = operands.some(usesOperandSize) ? [16, 32] : [32];
  return {
    mnemonic,
    operands: Object.freeze(operands),
    opcode: Object.freeze(encoding.opcode),
    modrm: encoding.modrm,
    plusRegister: encoding.plusRegister,
    operandSizes: options.sizes ?? defaultSizes,
    mandatoryPrefix: options.mandatoryPrefix ?? null,
    repeatable: options.repeatable ?? false,
    assemblerOnly: options.assemblerOnly ?? false,
    registerAlsoInRm: options.registerAlsoInRm ?? false,
    memorySizeImplied: options.memorySizeImplied ?? [],
    immediateSetsSize: options.immediateSetsSize ?? false,
  };
}

const hex = (byte: number): string => byte.toString(16).padStart(2, '0');

/** ADD OR ADC SBB AND SUB XOR CMP share one layout: opcodes 8n+0..8n+5 and group 80/81/83 /n. */
function arithmeticForms(mnemonic: Mnemonic, n: number): FormEntry[] {
  const base = n * 8;
  return [
    form(mnemonic, 'Eb,Gb', `${hex(base)} /r`),
    form(mnemonic, 'Ev,Gv', `${hex(base + 1)} /r`),
    form(mnemonic, 'Gb,Eb', `${hex(base + 2)} /r`),
    form(mnemonic, 'Gv,Ev', `${hex(base + 3)} /r`),
    // NASM prefers the sign-extended imm8 form, then the accumulator short forms.
    form(mnemonic, 'Ev,Ibs', `83 /${n}`, SIZE_MATCH),
    form(mnemonic, 'AL,Ib', hex(base + 4)),
    form(mnemonic, 'eAX,Iv', hex(base + 5)),
    form(mnemonic, 'Eb,Ib', `80 /${n}`, SIZE_MATCH),
    form(mnemonic, 'Ev,Iv', `81 /${n}`, SIZE_MATCH),
  ];
}

/** ROL ROR SHL SHR SAR: group 2 (C0/C1, D0-D3) with their /digit. */
function shiftForms(mnemonic: Mnemonic, digit: number): FormEntry[] {
  return [
    form(mnemonic, 'Eb,1', `d0 /${digit}`),
    form(mnemonic, 'Eb,CL', `d2 /${digit}`),
    form(mnemonic, 'Eb,Ib', `c0 /${digit}`),
    form(mnemonic, 'Ev,1', `d1 /${digit}`),
    form(mnemonic, 'Ev,CL', `d3 /${digit}`),
    form(mnemonic, 'Ev,Ib', `c1 /${digit}`),
  ];
}

function unaryGroup3Forms(mnemonic: Mnemonic, digit: number): FormEntry[] {
  return [form(mnemonic, 'Eb', `f6 /${digit}`), form(mnemonic, 'Ev', `f7 /${digit}`)];
}

function conditionalJumpForms(): FormEntry[] {
  return CONDITIONAL_JUMPS.flatMap((mnemonic, cc) => [
    form(mnemonic, 'Jb', hex(0x70 + cc)),
    form(mnemonic, 'Jz', `0f ${hex(0x80 + cc)}`),
  ]);
}

const ARITHMETIC: readonly Mnemonic[] = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const STRING_REP = { repeatable: true } as const;
// Shift counts (C0/C1 Ib) do not size the shifted operand; data immediates do.
const SIZE_MATCH = { immediateSetsSize: true } as const;

function dataMovementForms(): FormEntry[] {
  return [
    // moffs forms first: NASM uses A0-A3 for an absolute address with AL/AX/EAX.
    form('mov', 'AL,Ob', 'a0'),
    form('mov', 'eAX,Ov', 'a1'),
    form('mov', 'Ob,AL', 'a2'),
    form('mov', 'Ov,eAX', 'a3'),
    form('mov', 'Rd,Cd', '0f 20 /r'),
    form('mov', 'Cd,Rd', '0f 22 /r'),
    form('mov', 'Eb,Gb', '88 /r'),
    form('mov', 'Ev,Gv', '89 /r'),
    form('mov', 'Gb,Eb', '8a /r'),
    form('mov', 'Gv,Ev', '8b /r'),
    form('mov', 'Zb,Ib', 'b0+r'),
    form('mov', 'Zv,Iv', 'b8+r'),
    form('mov', 'Eb,Ib', 'c6 /0', SIZE_MATCH),
    form('mov', 'Ev,Iv', 'c7 /0', SIZE_MATCH),
    // A word register can only be extended from a byte, so NASM needs no size on the memory operand.
    form('movzx', 'Gv,Eb', '0f b6 /r', { memorySizeImplied: [16] }),
    form('movzx', 'Gd,Ew', '0f b7 /r'),
    form('movsx', 'Gv,Eb', '0f be /r', { memorySizeImplied: [16] }),
    form('movsx', 'Gd,Ew', '0f bf /r'),
    form('lea', 'Gv,M', '8d /r'),
    // XCHG: the accumulator forms, then NASM's reg,r/m order (the first operand goes in ModRM.reg).
    form('xchg', 'eAX,Zv', '90+r'),
    form('xchg', 'Zv,eAX', '90+r', { assemblerOnly: true }),
    form('xchg', 'Gb,Eb', '86 /r'),
    form('xchg', 'Eb,Gb', '86 /r', { assemblerOnly: true }),
    form('xchg', 'Gv,Ev', '87 /r'),
    form('xchg', 'Ev,Gv', '87 /r', { assemblerOnly: true }),
    // The stack is always 32 bits wide here: 16-bit pushes are outside the subset.
    form('push', 'Zd', '50+r'),
    form('push', 'Ibs', '6a', { sizes: [32] }),
    form('push', 'Iv', '68', { sizes: [32] }),
    form('push', 'Ed', 'ff /6'),
    form('pop', 'Zd', '58+r'),
    form('pop', 'Ed', '8f /0'),
    form('pushad', '', '60'),
    form('popad', '', '61'),
    form('pushfd', '', '9c'),
    form('popfd', '', '9d'),
  ];
}

function arithmeticAndLogicForms(): FormEntry[] {
  return [
    ...ARITHMETIC.flatMap((mnemonic, n) => arithmeticForms(mnemonic, n)),
    form('test', 'Eb,Gb', '84 /r'),
    form('test', 'Ev,Gv', '85 /r'),
    form('test', 'Gb,Eb', '84 /r', { assemblerOnly: true }),
    form('test', 'Gv,Ev', '85 /r', { assemblerOnly: true }),
    form('test', 'AL,Ib', 'a8'),
    form('test', 'eAX,Iv', 'a9'),
    form('test', 'Eb,Ib', 'f6 /0', SIZE_MATCH),
    form('test', 'Ev,Iv', 'f7 /0', SIZE_MATCH),
    form('inc', 'Zv', '40+r'),
    form('inc', 'Eb', 'fe /0'),
    form('inc', 'Ev', 'ff /0'),
    form('dec', 'Zv', '48+r'),
    form('dec', 'Eb', 'fe /1'),
    form('dec', 'Ev', 'ff /1'),
    ...unaryGroup3Forms('not', 2),
    ...unaryGroup3Forms('neg', 3),
    ...unaryGroup3Forms('mul', 4),
    ...unaryGroup3Forms('imul', 5),
    form('imul', 'Gv,Ev', '0f af /r'),
    form('imul', 'Gv,Ev,Ibs', '6b /r'),
    form('imul', 'Gv,Ev,Iv', '69 /r'),
    form('imul', 'Gv,Ibs', '6b /r', { assemblerOnly: true, registerAlsoInRm: true }),
    form('imul', 'Gv,Iv', '69 /r', { assemblerOnly: true, registerAlsoInRm: true }),
    ...unaryGroup3Forms('div', 6),
    ...unaryGroup3Forms('idiv', 7),
    ...shiftForms('rol', 0),
    ...shiftForms('ror', 1),
    ...shiftForms('shl', 4),
    ...shiftForms('shr', 5),
    ...shiftForms('sar', 7),
    form('cdq', '', '99', { sizes: [32] }),
    form('cwd', '', '99', { sizes: [16] }),
  ];
}

function controlTransferForms(): FormEntry[] {
  return [
    form('jmp', 'Jb', 'eb'),
    form('jmp', 'Jz', 'e9'),
    form('jmp', 'Ed', 'ff /4', { memorySizeImplied: [32] }),
    ...conditionalJumpForms(),
    form('call', 'Jz', 'e8'),
    form('call', 'Ed', 'ff /2', { memorySizeImplied: [32] }),
    form('ret', '', 'c3'),
    form('ret', 'Iw', 'c2'),
    form('loop', 'Jb', 'e2'),
    form('int3', '', 'cc'),
    form('int', 'Ib', 'cd'),
    form('iretd', '', 'cf'),
  ];
}

function stringForms(): FormEntry[] {
  return [
    form('movsb', '', 'a4', STRING_REP),
    form('movsw', '', 'a5', { ...STRING_REP, sizes: [16] }),
    form('movsd', '', 'a5', STRING_REP),
    form('stosb', '', 'aa', STRING_REP),
    form('stosw', '', 'ab', { ...STRING_REP, sizes: [16] }),
    form('stosd', '', 'ab', STRING_REP),
    form('lodsb', '', 'ac', STRING_REP),
    form('lodsw', '', 'ad', { ...STRING_REP, sizes: [16] }),
    form('lodsd', '', 'ad', STRING_REP),
  ];
}

function systemForms(): FormEntry[] {
  return [
    form('hlt', '', 'f4'),
    form('cpuid', '', '0f a2'),
    form('in', 'AL,Ib', 'e4'),
    form('in', 'eAX,Ib', 'e5'),
    form('in', 'AL,DX', 'ec'),
    form('in', 'eAX,DX', 'ed'),
    form('out', 'Ib,AL', 'e6'),
    form('out', 'Ib,eAX', 'e7'),
    form('out', 'DX,AL', 'ee'),
    form('out', 'DX,eAX', 'ef'),
    form('rdmsr', '', '0f 32'),
    form('wrmsr', '', '0f 30'),
    form('rdtsc', '', '0f 31'),
    form('invlpg', 'M', '0f 01 /7'),
    form('lidt', 'Ms', '0f 01 /3'),
    form('vmcall', '', '0f 01 =c1'),
    form('cli', '', 'fa'),
    form('sti', '', 'fb'),
    form('clc', '', 'f8'),
    form('stc', '', 'f9'),
    form('cmc', '', 'f5'),
    form('cld', '', 'fc'),
    form('std', '', 'fd'),
    // PAUSE is F3 90; it must be found before NOP, which shares the opcode byte.
    form('pause', '', '90', { mandatoryPrefix: 0xf3 }),
    form('nop', '', '90'),
  ];
}

/** Every form of the subset, in NASM preference order within each mnemonic. */
// System forms come first so that the decoder meets PAUSE and NOP before XCHG eAX,eAX (90).
export const FORMS: readonly Form[] = Object.freeze([
  ...systemForms(),
  ...dataMovementForms(),
  ...arithmeticAndLogicForms(),
  ...controlTransferForms(),
  ...stringForms(),
].map((entry, index): Form => Object.freeze({ index, ...entry })));

/** The forms of each mnemonic, in preference order. */
export const FORMS_BY_MNEMONIC: ReadonlyMap<Mnemonic, readonly Form[]> = groupByMnemonic(FORMS);

function groupByMnemonic(forms: readonly Form[]): ReadonlyMap<Mnemonic, readonly Form[]> {
  const groups = new Map<Mnemonic, Form[]>(MNEMONICS.map((mnemonic) => [mnemonic, []]));
  for (const entry of forms) groups.get(entry.mnemonic)?.push(entry);
  for (const [mnemonic, entries] of groups) {
    if (entries.length === 0) throw new Error(`opcode table: mnemonic ${mnemonic} has no form`);
  }
  return groups;
}

/** Index of the operand that ModRM.rm encodes, or -1 when the form has none. */
export function modrmOperandIndex(entry: Form): number {
  return entry.operands.findIndex((pattern) => pattern.type === 'E' || pattern.type === 'M' || pattern.type === 'R');
}

/**
 * Whether a register in this slot tells NASM the size of a memory operand beside it. The
 * shift count CL and the port DX do not: "shl [eax], cl" has no size.
 */
export function patternSizesMemory(pattern: OperandPattern): boolean {
  if (pattern.type === 'fixed') return pattern.number === 0;
  return pattern.type === 'E' || pattern.type === 'G' || pattern.type === 'Z';
}

/** Bits of an operand of a size code under an operand-size attribute (v follows the attribute). */
export function sizeCodeBits(size: SizeCode, operandSize: 16 | 32): 8 | 16 | 32 {
  if (size === 'b') return 8;
  if (size === 'w') return 16;
  if (size === 'd') return 32;
  return operandSize;
}
