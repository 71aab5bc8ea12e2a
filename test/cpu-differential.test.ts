// Differential test against a real x86 implementation: random straight-line programs of ALU,
// shift, rotate, multiply, guarded divide, data-movement, Jcc, LOOP and string instructions
// are assembled into one static Linux i386 binary per property run, executed under
// qemu-i386 (package "qemu-user") and by the interpreter, and the registers, EFLAGS and a
// data area after each case must agree.
//
// Every case starts from fresh random registers, flags (via POPFD) and data. It dumps its
// state into a results table; the binary writes the table to stdout with one write(2). The
// interpreter runs the very same bytes (the ELF header is hand-written in the nasm source, so
// file = memory image) until that first INT 0x80, then reads the table from memory.
//
// Flags compared: CF PF AF ZF SF OF DF. IF/TF are not comparable (user mode cannot change IF).
// Undefined flags are NOT masked: the model was built to produce QEMU's values (MUL/IMUL SF ZF
// PF from the low half, AF = 0; shifts AF = 0; DIV leaves flags unchanged), so they are checked.
//
// Without qemu-i386 the test fails and says which package to install.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';

import { resetCpu, step } from '../src/core/hardware/cpu/index.ts';
import { NO_EXITS, TestBus, hex, nasm } from './fixtures/cpu/harness.ts';
import { formInstances, type FormInstance } from './fixtures/x86/form-instances.ts';
import { FORMS, type Form, type Mnemonic } from '../src/core/hardware/x86/index.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const QEMU = process.env.QEMU_I386 ?? 'qemu-i386';
const LOAD_ADDRESS = 0x08048000;
const DATA_BYTES = 32;
const RECORD_BYTES = 8 * 4 + 4 + DATA_BYTES;
const COMPARED_FLAGS = 0x0cd5; // CF PF AF ZF SF OF DF
const FLAG_NAMES: readonly [number, string][] = [[0x1, 'CF'], [0x4, 'PF'], [0x10, 'AF'], [0x40, 'ZF'], [0x80, 'SF'], [0x800, 'OF'], [0x400, 'DF']];
const CASES_PER_BINARY = 10;
const RUNS = Number(process.env.CPU_DIFFERENTIAL_RUNS ?? 100);

// ---- random programs -------------------------------------------------------------------

const DEST32 = ['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi'];
const SOURCE32 = [...DEST32, 'ebp'];
const DEST16 = ['ax', 'cx', 'dx', 'bx', 'si', 'di'];
const DEST8 = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];
const REGISTERS: Record<8 | 16 | 32, readonly string[]> = { 8: DEST8, 16: DEST16, 32: DEST32 };
const SIZE_NAME: Record<8 | 16 | 32, string> = { 8: 'byte', 16: 'word', 32: 'dword' };
const ALU = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'test'];
const SHIFTS = ['rol', 'ror', 'shl', 'shr', 'sar'];
const JCC = ['jo', 'jno', 'jc', 'jnc', 'jz', 'jnz', 'jna', 'ja', 'js', 'jns', 'jpe', 'jpo', 'jl', 'jnl', 'jng', 'jg'];

const uint32 = fc.oneof(
  fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const size = fc.constantFrom<8 | 16 | 32>(8, 16, 32);
const registerOf = (bits: 8 | 16 | 32): fc.Arbitrary<string> => fc.constantFrom(...REGISTERS[bits]);
/** [ebp+d] or an absolute address inside the data area, aligned so the operand stays inside it. */
const memoryOf = (bits: 8 | 16 | 32): fc.Arbitrary<string> =>
  fc.tuple(fc.integer({ min: 0, max: DATA_BYTES - bits / 8 }), fc.boolean()).map(([offset, viaEbp]) =>
    `${SIZE_NAME[bits]} [${viaEbp ? 'ebp' : 'data'}+${offset}]`);
const immediateOf = (bits: 8 | 16 | 32): fc.Arbitrary<string> => uint32.map((value) => hex(bits === 32 ? value : value & ((1 << bits) - 1)));
const registerOrMemory = (bits: 8 | 16 | 32): fc.Arbitrary<string> => fc.oneof(registerOf(bits), memoryOf(bits));

const aluInstruction = fc.tuple(fc.constantFrom(...ALU), size).chain(([op, bits]) =>
  fc.oneof(
    fc.tuple(registerOf(bits), registerOf(bits)),
    fc.tuple(registerOrMemory(bits), immediateOf(bits)),
    fc.tuple(registerOf(bits), memoryOf(bits)),
    fc.tuple(memoryOf(bits), registerOf(bits)),
  ).map(([a, b]) => `${op} ${a}, ${b}`));

const unaryInstruction = fc.tuple(fc.constantFrom('inc', 'dec', 'neg', 'not'), size).chain(([op, bits]) =>
  registerOrMemory(bits).map((operand) => `${op} ${operand}`));

const shiftInstruction = fc.tuple(fc.constantFrom(...SHIFTS), size).chain(([op, bits]) =>
  fc.tuple(registerOrMemory(bits), fc.oneof(fc.constant('1'), fc.constant('cl'), fc.integer({ min: 0, max: 40 }).map(String)))
    .map(([operand, count]) => `${op} ${operand}, ${count}`));

const multiplyInstruction = fc.oneof(
  fc.tuple(fc.constantFrom('mul', 'imul'), size).chain(([op, bits]) => registerOrMemory(bits).map((operand) => `${op} ${operand}`)),
  fc.constantFrom<16 | 32>(16, 32).chain((bits) => fc.tuple(registerOf(bits), registerOrMemory(bits)).map(([a, b]) => `imul ${a}, ${b}`)),
  fc.constantFrom<16 | 32>(16, 32).chain((bits) =>
    fc.tuple(registerOf(bits), registerOrMemory(bits), fc.oneof(fc.integer({ min: -128, max: 127 }), uint32.map((v) => (bits === 16 ? v & 0xffff : v))))
      .map(([a, b, c]) => `imul ${a}, ${b}, ${c}`)),
);

/** Divides that cannot raise #DE: EDX cleared (or sign-extended) and the divisor forced positive. */
const divideInstruction = fc.tuple(fc.constantFrom('ecx', 'ebx', 'esi', 'edi'), fc.boolean()).map(([divisor, signed]) =>
  `and ${divisor}, 0x7fffffff\nor ${divisor}, 1\n${signed ? 'cdq\nidiv' : 'xor edx, edx\ndiv'} ${divisor}`);

const moveInstruction = fc.oneof(
  size.chain((bits) => fc.tuple(registerOrMemory(bits), registerOf(bits)).map(([a, b]) => `mov ${a}, ${b}`)),
  size.chain((bits) => fc.tuple(registerOf(bits), immediateOf(bits)).map(([a, b]) => `mov ${a}, ${b}`)),
  fc.tuple(fc.constantFrom('movzx', 'movsx'), fc.constantFrom(...DEST32, ...DEST16), fc.oneof(registerOf(8), memoryOf(8))).map(([op, a, b]) => `${op} ${a}, ${b}`),
  fc.tuple(fc.constantFrom('movzx', 'movsx'), fc.constantFrom(...DEST32), fc.oneof(registerOf(16), memoryOf(16))).map(([op, a, b]) => `${op} ${a}, ${b}`),
  size.chain((bits) => fc.tuple(registerOf(bits), registerOrMemory(bits)).map(([a, b]) => `xchg ${a}, ${b}`)),
  fc.tuple(fc.constantFrom(...DEST32), fc.constantFrom(...SOURCE32), fc.constantFrom(...SOURCE32), fc.constantFrom(1, 2, 4, 8), fc.integer({ min: -0x80000000, max: 0x7fffffff }))
    .map(([d, b, i, s, disp]) => `lea ${d}, [${b}+${i}*${s}+${disp}]`),
  fc.tuple(fc.constantFrom(...SOURCE32), fc.constantFrom(...DEST32)).map(([a, b]) => `push ${a}\npop ${b}`),
  fc.constantFrom('cdq', 'cwd'),
);

/** Wide enough that string instructions stay inside the padded data area whatever DF says. */
const stringInstruction = fc.tuple(fc.constantFrom('movs', 'stos', 'lods'), fc.constantFrom('b', 'w', 'd'), fc.integer({ min: 0, max: 3 }), fc.boolean())
  .map(([op, unit, count, rep]) => `lea esi, [ebp+8]\nlea edi, [ebp+16]\nmov ecx, ${count}\n${rep ? 'rep ' : ''}${op}${unit}`);

/** PUSH ESP, POP ESP, PUSHAD/POPAD slot order, POP to memory. */
const stackInstruction = fc.oneof(
  fc.constantFrom(...DEST32).map((d) => `push esp\npop ${d}`),
  fc.tuple(fc.constantFrom(...DEST32), fc.integer({ min: 0, max: 7 })).map(([d, slot]) => `pushad\nmov ${d}, [esp+${slot * 4}]\nadd esp, 32`),
  // Slot 2 is EBP, the data pointer, so it is left alone; slot 3 (ESP) checks that POPAD skips it.
  fc.tuple(fc.constantFrom(0, 1, 3, 4, 5, 6, 7), uint32).map(([slot, value]) => `pushad\nmov dword [esp+${slot * 4}], ${hex(value)}\npopad`),
  fc.tuple(fc.constantFrom(...SOURCE32), fc.integer({ min: 0, max: DATA_BYTES / 4 - 1 })).map(([source, slot]) => `push ${source}\npop dword [data+${slot * 4}]`),
  fc.tuple(fc.constantFrom(...DEST32), fc.constantFrom(...DEST32), uint32).filter(([a, b]) => a !== b)
    .map(([saved, seen, value]) => `mov ${saved}, esp\npush dword ${hex(value)}\npop esp\nmov ${seen}, esp\nmov esp, ${saved}`),
);

type Piece =
  | string
  | { readonly jump: string; readonly body: string }
  | { readonly loop: number; readonly body: string }
  | { readonly call: string; readonly release: number };

const straight = fc.oneof(
  { weight: 5, arbitrary: aluInstruction },
  { weight: 2, arbitrary: unaryInstruction },
  { weight: 4, arbitrary: shiftInstruction },
  { weight: 3, arbitrary: multiplyInstruction },
  { weight: 1, arbitrary: divideInstruction },
  { weight: 3, arbitrary: moveInstruction },
  { weight: 1, arbitrary: stringInstruction },
  { weight: 1, arbitrary: stackInstruction },
);

const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 8, arbitrary: straight },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...JCC), straight).map(([jump, body]) => ({ jump, body })) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 4 }), aluInstruction).map(([loop, body]) => ({ loop, body })) },
  { weight: 1, arbitrary: fc.tuple(straight, fc.constantFrom(0, 4, 8)).map(([call, release]) => ({ call, release })) },
);

interface Case {
  readonly registers: readonly number[]; // eax ecx edx ebx esi edi
  readonly flags: number;
  readonly data: readonly number[]; // DATA_BYTES / 4 dwords
  readonly pieces: readonly Piece[];
}

const caseArbitrary: fc.Arbitrary<Case> = fc.record({
  registers: fc.array(uint32, { minLength: 6, maxLength: 6 }),
  flags: fc.integer({ min: 0, max: 0xffff }).map((flags) => (flags & COMPARED_FLAGS) | 2),
  data: fc.array(uint32, { minLength: DATA_BYTES / 4, maxLength: DATA_BYTES / 4 }),
  pieces: fc.array(piece, { minLength: 1, maxLength: 24 }),
});

const LOOP_RENAMES: Readonly<Record<string, string>> = { ecx: 'eax', cx: 'ax', cl: 'al', ch: 'ah' };

function pieceSource(item: Piece, label: string): string {
  if (typeof item === 'string') return item;
  if ('jump' in item) return `${item.jump} ${label}\n${item.body}\n${label}:`;
  if ('call' in item) {
    // Arguments pushed for RET imm16 to release, so ESP comes back balanced.
    const pushes = Array.from({ length: item.release / 4 }, (_, i) => `push dword ${i}`);
    const ret = item.release === 0 ? 'ret' : `ret ${item.release}`;
    return [...pushes, `call ${label}f`, `jmp ${label}e`, `${label}f:`, item.call, ret, `${label}e:`].join('\n');
  }
  // The loop body must leave ECX (the count) alone, so its uses of ECX move to EAX.
  const body = item.body.replace(/\b(ecx|cx|cl|ch)\b/g, (name) => LOOP_RENAMES[name] ?? name);
  return `mov ecx, ${item.loop}\n${label}:\n${body}\nloop ${label}`;
}

function caseSource(entry: Case, index: number): string {
  const record = `results+${index * RECORD_BYTES}`;
  const lines = [
    `; case ${index}`,
    'mov esp, stack_top',
    `push dword ${hex(entry.flags)}`,
    'popfd',
    ...entry.data.map((value, i) => `mov dword [data+${i * 4}], ${hex(value)}`),
    ...['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi'].map((name, i) => `mov ${name}, ${hex(entry.registers[i])}`),
    'mov ebp, data',
    ...entry.pieces.map((item, i) => pieceSource(item, `.c${index}p${i}`)),
    ...['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'].map((name, i) => `mov [${record}+${i * 4}], ${name}`),
    'pushfd',
    `pop dword [${record}+32]`,
    ...Array.from({ length: DATA_BYTES / 4 }, (_, i) => `push dword [data+${i * 4}]\npop dword [${record}+${36 + i * 4}]`),
  ];
  return lines.join('\n');
}

/** A complete ELF32 executable: header, one RWX PT_LOAD segment covering the whole file. */
function programSource(cases: readonly Case[]): string {
  return `bits 32
org ${hex(LOAD_ADDRESS)}
ehdr:
  db 0x7f, "ELF", 1, 1, 1, 0
  times 8 db 0
  dw 2, 3
  dd 1, _start, phdr - ehdr, 0, 0
  dw 52, 32, 1, 0, 0, 0
phdr:
  dd 1, 0, ehdr, ehdr, file_end - ehdr, file_end - ehdr, 7, 0x1000
_start:
${cases.map(caseSource).join('\n')}
  mov eax, 4
  mov ebx, 1
  mov ecx, results
  mov edx, ${cases.length * RECORD_BYTES}
  int 0x80
  mov eax, 1
  xor ebx, ebx
  int 0x80
align 16
  times 64 db 0
data:
  times ${DATA_BYTES} db 0
  times 64 db 0
results:
  times ${cases.length * RECORD_BYTES} db 0
align 16
  times 4096 db 0
stack_top:
file_end:
`;
}

// ---- the two executions ----------------------------------------------------------------

let scratch: string | undefined;

function runUnderQemu(image: Uint8Array): Uint8Array {
  scratch ??= mkdtempSync(join(tmpdir(), 'cpu-qemu-'));
  const file = join(scratch, 'program');
  writeFileSync(file, image, { mode: 0o755 });
  const result = spawnSync(QEMU, [file], { maxBuffer: 1 << 24 });
  if (result.error) throw new Error(`qemu-i386 is required for the differential test (${result.error.message}); install it with "apt-get install qemu-user"`);
  assert.equal(result.status, 0, `qemu-i386 failed: ${result.stderr.toString()}`);
  return new Uint8Array(result.stdout);
}

function runUnderInterpreter(image: Uint8Array, resultsBytes: number): Uint8Array {
  const bus = new TestBus();
  bus.load(LOAD_ADDRESS, image);
  const entry = new DataView(image.buffer, image.byteOffset).getUint32(24, true);
  const cpu = resetCpu(entry, 0);
  for (let steps = 0; steps < 5_000_000; steps += 1) {
    const outcome = step(cpu, bus, NO_EXITS, steps);
    if (outcome.kind === 'retired') {
      bus.commit();
      continue;
    }
    bus.discard();
    assert.ok(outcome.kind === 'exception' && outcome.vector === 0x80, `interpreter stopped with ${JSON.stringify(outcome)} at ${hex(cpu.eip)}`);
    const results = cpu.gpr[1]; // ECX of the write(2) call
    return Uint8Array.from({ length: resultsBytes }, (_, i) => bus.peek(results + i));
  }
  throw new Error('interpreter did not reach the write system call');
}

function describeDifference(entry: Case, index: number, expected: DataView, actual: DataView): string | undefined {
  const base = index * RECORD_BYTES;
  const names = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
  const differences: string[] = [];
  names.forEach((name, i) => {
    const want = expected.getUint32(base + i * 4, true);
    const got = actual.getUint32(base + i * 4, true);
    if (want !== got) differences.push(`${name}: qemu ${hex(want)} interpreter ${hex(got)}`);
  });
  const wantFlags = expected.getUint32(base + 32, true) & COMPARED_FLAGS;
  const gotFlags = actual.getUint32(base + 32, true) & COMPARED_FLAGS;
  if (wantFlags !== gotFlags) {
    const flagText = (flags: number): string => FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name).join(' ') || '-';
    differences.push(`eflags: qemu ${flagText(wantFlags)} interpreter ${flagText(gotFlags)}`);
  }
  for (let i = 0; i < DATA_BYTES; i += 4) {
    const want = expected.getUint32(base + 36 + i, true);
    const got = actual.getUint32(base + 36 + i, true);
    if (want !== got) differences.push(`data+${i}: qemu ${hex(want)} interpreter ${hex(got)}`);
  }
  if (differences.length === 0) return undefined;
  return `case ${index} differs:\n  ${differences.join('\n  ')}\nsource:\n${caseSource(entry, index)}`;
}

after(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

/** Runs the cases in one binary under both, and fails with the first case that differs. */
function assertCasesAgree(cases: readonly Case[]): void {
  const image = nasm(programSource(cases));
  const expected = runUnderQemu(image);
  assert.equal(expected.length, cases.length * RECORD_BYTES, 'qemu output has the wrong length');
  const actual = runUnderInterpreter(image, expected.length);
  const expectedView = new DataView(expected.buffer, expected.byteOffset);
  const actualView = new DataView(actual.buffer, actual.byteOffset);
  for (const [index, entry] of cases.entries()) {
    const difference = describeDifference(entry, index, expectedView, actualView);
    if (difference !== undefined) assert.fail(difference);
  }
}

test('random ALU/shift/multiply programs agree with qemu-i386', () => {
  fc.assert(
    fc.property(fc.array(caseArbitrary, { minLength: 1, maxLength: CASES_PER_BINARY }), assertCasesAgree),
    { numRuns: RUNS, includeErrorInReport: true },
  );
});

// ---- every form of the opcode table ------------------------------------------------------

/**
 * Forms a user process cannot run the way a guest kernel runs them, with why. Everything else
 * in the table runs: test/fixtures/x86/form-instances.ts writes each form, and the test below
 * fails on a form that is neither run nor named here.
 */
const NOT_RUN_UNDER_QEMU: Readonly<Partial<Record<Mnemonic, string>>> = {
  hlt: 'privileged: #GP in user mode', cli: 'privileged: #GP in user mode (IOPL 0)', sti: 'privileged: #GP in user mode (IOPL 0)',
  in: 'privileged port I/O', out: 'privileged port I/O', rdmsr: 'privileged', wrmsr: 'privileged', invlpg: 'privileged', lidt: 'privileged',
  cpuid: "the model answers the guest ABI's CPUID, not the host's", rdtsc: "the model's clock is virtual time",
  vmcall: 'a VM exit in the model, #UD on the host', int: 'a system call to the host kernel', int3: 'SIGTRAP in a user process',
  iretd: 'needs a CS selector, and no instruction of the subset reads CS',
};
const CONTROL_REGISTER_REASON = 'MOV to or from CRn is privileged';

function notRunReason(form: Form): string | undefined {
  return NOT_RUN_UNDER_QEMU[form.mnemonic] ?? (form.operands.some((p) => p.type === 'C') ? CONTROL_REGISTER_REASON : undefined);
}

/**
 * One instance as a piece of a case: with what it needs first (a divisor that cannot fault,
 * a target address, a string to copy) and what balances it after (a POP for a PUSH). Jumps,
 * calls and returns skip a MOV to ESI when they are taken.
 */
function runnable(instance: FormInstance, label: string): string {
  const { form, operands } = instance;
  const text = instance.text.replaceAll('$', label);
  const skipped = `mov esi, 0x5a5a5a5a\n${label}:`;
  const bits = form.operands[0]?.type === 'E' && form.operands[0].size === 'b' ? 8 : instance.operandSize;
  switch (form.mnemonic) {
    case 'div':
    case 'idiv': {
      // A positive divisor of at least 2 and a dividend extended from the low half cannot overflow.
      const extend = { 8: form.mnemonic === 'div' ? 'movzx ax, al' : 'movsx ax, al', 16: form.mnemonic === 'div' ? 'xor dx, dx' : 'cwd', 32: form.mnemonic === 'div' ? 'xor edx, edx' : 'cdq' }[bits];
      return `mov ${operands[0]}, 0x25\n${extend}\n${text}`;
    }
    case 'push': return `${text}\npop esi`;
    // A user process always runs with IF set; the model's guests run at CPL 0 and may clear it.
    case 'pushfd': return `${text}\npop esi\nand esi, ~0x200`;
    case 'pop': return `push dword 0x13572468\n${text}`;
    case 'popfd': return `mov edi, esi\nand edi, 0x${COMPARED_FLAGS.toString(16)}\npush edi\n${text}`;
    case 'pushad': return `${text}\npopad`;
    case 'popad': return `pushad\n${text}`;
    case 'call': return `${form.operands[0].type === 'J' ? '' : `mov ${operands[0]}, ${label}\n`}${text}\n${skipped}\npop edi`;
    case 'jmp': return `${form.operands[0].type === 'J' ? '' : `mov ${operands[0]}, ${label}\n`}${text}\n${skipped}`;
    case 'ret': return `${operands.length === 0 ? '' : 'push dword 1\npush dword 2\n'}push dword ${label}\n${text}\n${skipped}`;
    default:
  }
  if (form.repeatable) return `lea esi, [ebp+8]\nlea edi, [ebp+16]\nmov ecx, 2\n${text}`;
  if (form.operands[0]?.type === 'J') return `${text}\n${skipped}`;
  return text;
}

const FORM_CASES_PER_BINARY = 200;
const FORM_RUNS = Number(process.env.CPU_DIFFERENTIAL_FORM_RUNS ?? 5);

test('every form of the opcode table agrees with qemu-i386, or is named with the reason it cannot run there', () => {
  const instances = formInstances();
  const run = instances.filter((instance) => notRunReason(instance.form) === undefined);
  const covered = new Set(run.map((instance) => instance.form));
  const untested = FORMS.filter((form) => !covered.has(form) && notRunReason(form) === undefined);
  assert.deepEqual(untested.map((form) => form.mnemonic), [], 'forms neither run nor named in NOT_RUN_UNDER_QEMU');
  const state = fc.record({ registers: caseArbitrary.map((c) => c.registers), flags: caseArbitrary.map((c) => c.flags), data: caseArbitrary.map((c) => c.data) });
  // One binary per chunk of instances, each instance from random registers, flags and data.
  for (let start = 0; start < run.length; start += FORM_CASES_PER_BINARY) {
    const chunk = run.slice(start, start + FORM_CASES_PER_BINARY);
    fc.assert(
      fc.property(fc.array(state, { minLength: chunk.length, maxLength: chunk.length }), (states) => {
        assertCasesAgree(chunk.map((instance, i) => ({ ...states[i], pieces: [runnable(instance, `.form${i}`)] })));
      }),
      { numRuns: FORM_RUNS, includeErrorInReport: true },
    );
  }
});
