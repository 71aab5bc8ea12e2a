// System instructions: the VM exits the controls ask for (reason, exit qualification,
// instruction length; SDM Vol. 3, Appendix C and Tables 28-1, 28-3, 28-5), their behaviour
// when they do not exit, MOV CRn checks, #UD for bytes outside the subset, and instruction
// fetch faults at a page boundary.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Cr4 } from '../src/core/hardware/cpu/index.ts';
import type { ExitControls, StepOutcome } from '../src/core/hardware/cpu/index.ts';
import { ALL_EXITS, NO_EXITS, TestBus, flags, hex, machineWith, nasm, prepareSnippet, register, stepOnce } from './fixtures/cpu/harness.ts';
import type { RegisterName, SnippetState } from './fixtures/cpu/harness.ts';
import { resetCpu } from '../src/core/hardware/cpu/index.ts';

function firstStep(code: string, state: SnippetState = {}, controls: ExitControls = NO_EXITS, tsc = 0) {
  const machine = prepareSnippet(code, state);
  const before = structuredClone(machine.cpu);
  const outcome = stepOnce(machine, controls, tsc);
  return { machine, before, outcome };
}

describe('instruction exits', () => {
  const rows: [string, SnippetState, number, number][] = [
    ['cpuid', {}, 10, 0],
    ['hlt', {}, 12, 0],
    ['invlpg [eax+0x10]', { registers: { eax: 0x5000 } }, 14, 0x5010],
    ['rdtsc', {}, 16, 0],
    ['vmcall', {}, 18, 0],
    ['mov cr3, ebx', { registers: { ebx: 0x9000 } }, 28, 0x303],
    ['mov esi, cr3', {}, 28, 0x613],
    ['in al, 0x60', {}, 30, 0x00600048],
    ['in ax, dx', { registers: { edx: 0x3f8 } }, 30, 0x03f80009],
    ['in eax, dx', { registers: { edx: 0xffff0cfc } }, 30, 0x0cfc000b],
    ['out dx, eax', { registers: { edx: 0xcf8 } }, 30, 0x0cf80003],
    ['out 0x80, al', {}, 30, 0x00800040],
    ['rdmsr', {}, 31, 0],
    ['wrmsr', {}, 32, 0],
    ['pause', {}, 40, 0],
  ];
  for (const [code, state, reason, qualification] of rows) {
    test(`${code}: exit ${reason}, qualification ${hex(qualification)}`, () => {
      const { machine, before, outcome } = firstStep(code, state, ALL_EXITS);
      assert.equal(outcome.kind, 'exit');
      if (outcome.kind !== 'exit') return;
      assert.equal(outcome.reason, reason);
      assert.equal(hex(outcome.qualification), hex(qualification));
      assert.equal(outcome.length, nasm(code).length);
      assert.equal(outcome.instruction?.length, outcome.length);
      assert.equal(outcome.gla, null);
      assert.deepEqual(machine.cpu, before, 'an exit leaves the CPU as it was');
    });
  }

  test('MOV to CR0/CR4 exits only when a bit owned by the guest/host mask changes', () => {
    const controls = { ...NO_EXITS, cr0Mask: 0x80000000, cr4Mask: Cr4.VMXE };
    const paging = firstStep('mov cr0, eax', { registers: { eax: 0x80000011 } }, controls).outcome;
    assert.deepEqual([paging.kind, paging.kind === 'exit' && paging.qualification], ['exit', 0x000]);
    const harmless = firstStep('mov cr0, eax', { registers: { eax: 0x00000013 } }, controls).outcome;
    assert.equal(harmless.kind, 'retired');
    const vmxe = firstStep('mov cr4, edx', { registers: { edx: Cr4.VMXE } }, controls).outcome;
    assert.deepEqual([vmxe.kind, vmxe.kind === 'exit' && vmxe.qualification], ['exit', 0x204]);
  });

  test('IN and OUT exit even when controls.io is false: the caller owns the ports', () => {
    assert.equal(firstStep('in al, 0x60', {}, NO_EXITS).outcome.kind, 'exit');
  });
});

describe('the same instructions without exiting', () => {
  test('CPUID answers the vendor leaf and repeats the highest basic leaf above it', () => {
    const { machine } = firstStep('cpuid', { registers: { eax: 0 } });
    const vendor = Buffer.alloc(12);
    [register(machine, 'ebx'), register(machine, 'edx'), register(machine, 'ecx')].forEach((value, i) => vendor.writeUInt32LE(value, i * 4));
    assert.equal(vendor.toString('latin1'), 'GenuineIntel');
    assert.equal(register(machine, 'eax'), 1);
    const leaf1 = firstStep('cpuid', { registers: { eax: 1 } }).machine;
    const leaf7 = firstStep('cpuid', { registers: { eax: 7 } }).machine;
    assert.deepEqual(leaf7.cpu.gpr.slice(0, 4), leaf1.cpu.gpr.slice(0, 4));
  });

  test('HLT retires with `halted`; PAUSE and NOP retire', () => {
    assert.deepEqual(firstStep('hlt').outcome, { kind: 'retired', halted: true });
    assert.deepEqual(firstStep('pause').outcome, { kind: 'retired' });
    assert.deepEqual(firstStep('nop').outcome, { kind: 'retired' });
  });

  test('INVLPG retires naming the linear address to drop', () => {
    assert.deepEqual(firstStep('invlpg [eax*2+0x10]', { registers: { eax: 0x80000000 } }).outcome, { kind: 'retired', invlpg: 0x10 });
  });

  test('RDTSC reads the caller clock into EDX:EAX', () => {
    const { machine } = firstStep('rdtsc', {}, NO_EXITS, 0x1_2345_6789);
    assert.equal(hex(register(machine, 'eax')), '0x23456789');
    assert.equal(register(machine, 'edx'), 1);
  });

  test('VMCALL outside VMX is #UD; RDMSR and WRMSR without MSR exiting are #GP(0)', () => {
    assert.deepEqual(firstStep('vmcall').outcome, { kind: 'exception', vector: 6, errorCode: null });
    assert.deepEqual(firstStep('rdmsr').outcome, { kind: 'exception', vector: 13, errorCode: 0 });
    assert.deepEqual(firstStep('wrmsr').outcome, { kind: 'exception', vector: 13, errorCode: 0 });
  });

  test('CLI clears IF; STI sets it and reports the interrupt shadow only when IF was clear', () => {
    assert.equal(firstStep('cli', { flags: 'IF' }).machine.cpu.eflags, 2);
    const { machine, outcome } = firstStep('sti');
    assert.deepEqual(outcome, { kind: 'retired', interruptShadow: true });
    assert.equal(machine.cpu.eflags, 0x202);
    assert.deepEqual(firstStep('sti', { flags: 'IF' }).outcome, { kind: 'retired' });
  });

  test('CLC STC CMC CLD STD (F8 F9 F5 FC FD) change their one flag and nothing else, from every flag state', () => {
    const rows: [string, number, (flag: boolean) => boolean][] = [
      ['clc', flags('CF'), () => false], ['stc', flags('CF'), () => true], ['cmc', flags('CF'), (flag) => !flag],
      ['cld', flags('DF'), () => false], ['std', flags('DF'), () => true],
    ];
    const names = ['CF', 'PF', 'AF', 'ZF', 'SF', 'IF', 'DF', 'OF'];
    for (const [code, bit, after] of rows) {
      const bytes = nasm(`org 0x1000\n${code}`);
      assert.equal(hex(bytes[0]), hex({ clc: 0xf8, stc: 0xf9, cmc: 0xf5, cld: 0xfc, std: 0xfd }[code]!));
      for (let mask = 0; mask < 1 << names.length; mask += 1) {
        const state = names.filter((_, i) => (mask & (1 << i)) !== 0).join(' ');
        const machine = machineWith(bytes);
        machine.cpu.eflags = flags(state) | 2;
        const before = structuredClone(machine.cpu);
        assert.deepEqual(stepOnce(machine), { kind: 'retired' });
        const expected = after((before.eflags & bit) !== 0) ? before.eflags | bit : before.eflags & ~bit;
        assert.equal(hex(machine.cpu.eflags), hex(expected), `${code} from ${state || 'no flags'}`);
        assert.deepEqual({ ...machine.cpu, eflags: 0 }, { ...before, eip: before.eip + 1, eflags: 0 }, `${code}: only EIP and the flag change`);
      }
    }
  });

  test('TF set before an instruction reports a pending single-step trap; the POPFD that sets TF does not', () => {
    const machine = prepareSnippet('push dword 0x102\npopfd\nnop\npush dword 2\npopfd\nnop');
    const outcomes = Array.from({ length: 6 }, () => stepOnce(machine));
    assert.deepEqual(outcomes.map((outcome) => outcome.kind === 'retired' && outcome.singleStep === true), [false, false, true, true, true, false]);
  });

  test('LIDT loads a 16-bit limit and a 32-bit base', () => {
    const { machine } = firstStep('lidt [0x3000]', { memory: { 0x3000: 0x300007ff, 0x3004: 0x0012 } });
    assert.equal(machine.cpu.idtrLimit, 0x7ff);
    assert.equal(hex(machine.cpu.idtrBase), '0x123000');
  });

  test('INT n and INT3 end the step as software exceptions with the instruction length', () => {
    const int80 = firstStep('int 0x80');
    assert.deepEqual(int80.outcome, { kind: 'exception', vector: 0x80, errorCode: null, software: true, length: 2 });
    assert.deepEqual(int80.machine.cpu, int80.before);
    assert.deepEqual(firstStep('int3').outcome, { kind: 'exception', vector: 3, errorCode: null, software: true, length: 1 });
  });
});

describe('MOV to and from control registers', () => {
  const gp0: StepOutcome = { kind: 'exception', vector: 13, errorCode: 0 };

  test('CR0: PG without PE, NW without CD, and leaving protected mode are #GP(0)', () => {
    assert.deepEqual(firstStep('mov cr0, eax', { registers: { eax: 0x80000000 } }).outcome, gp0);
    assert.deepEqual(firstStep('mov cr0, eax', { registers: { eax: 0x10 } }).outcome, gp0);
    assert.deepEqual(firstStep('mov cr0, eax', { registers: { eax: 0x20000011 } }).outcome, gp0);
  });

  test('CR0: enabling paging flushes the whole TLB; reserved bits are dropped and ET stays 1', () => {
    const { machine, outcome } = firstStep('mov cr0, eax', { registers: { eax: 0x80100001 } });
    assert.deepEqual(outcome, { kind: 'retired', tlbFlush: 'all' });
    assert.equal(hex(machine.cpu.cr0), '0x80000011');
  });

  test('CR3 loads flush non-global entries and read back; CR2 is plain storage', () => {
    const { machine, outcome } = firstStep('mov cr3, ebx\nmov cr2, ebx\nmov eax, cr3\nmov ecx, cr2\nmov edx, cr0\nmov esi, cr4', { registers: { ebx: 0x5000 } });
    assert.deepEqual(outcome, { kind: 'retired', tlbFlush: 'non-global' });
    for (let i = 0; i < 5; i += 1) stepOnce(machine);
    assert.deepEqual(['eax', 'ecx', 'edx', 'esi'].map((name) => register(machine, name as RegisterName)), [0x5000, 0x5000, 0x11, 0]);
  });

  test('CR4: reserved bits and PCIDE are #GP(0); PSE and PGE changes flush everything', () => {
    assert.deepEqual(firstStep('mov cr4, eax', { registers: { eax: 1 << 12 } }).outcome, gp0);
    assert.deepEqual(firstStep('mov cr4, eax', { registers: { eax: Cr4.PCIDE } }).outcome, gp0);
    assert.deepEqual(firstStep('mov cr4, eax', { registers: { eax: Cr4.PSE | Cr4.PGE } }).outcome, { kind: 'retired', tlbFlush: 'all' });
    assert.deepEqual(firstStep('mov cr4, eax', { registers: { eax: Cr4.OSFXSR } }).outcome, { kind: 'retired' });
  });

  test('CR1 and CR5 do not exist: #UD', () => {
    assert.deepEqual(firstStep('db 0x0f, 0x20, 0xc8').outcome, { kind: 'exception', vector: 6, errorCode: null });
    assert.deepEqual(firstStep('db 0x0f, 0x22, 0xe8').outcome, { kind: 'exception', vector: 6, errorCode: null });
  });
});

describe('#UD for everything outside the subset', () => {
  const rows: [string, string][] = [
    ['UD2', 'db 0x0f, 0x0b'],
    ['LOCK prefix', 'db 0xf0, 0x01, 0xd8'],
    ['16-bit PUSH', 'db 0x66, 0x50'],
    ['far JMP', 'db 0xea, 0, 0, 0, 0, 0x08, 0'],
    ['MOV to a segment register', 'db 0x8e, 0xd8'],
    ['segment override', 'db 0x2e, 0x8b, 0x00'],
    ['LEA with a register operand', 'db 0x8d, 0xc0'],
    ['x87 escape', 'db 0xd9, 0xe8'],
  ];
  for (const [name, code] of rows) {
    test(name, () => {
      const { machine, before, outcome } = firstStep(code);
      assert.deepEqual(outcome, { kind: 'exception', vector: 6, errorCode: null });
      assert.deepEqual(machine.cpu, before);
    });
  }
});

describe('instruction fetch', () => {
  const mov = nasm('mov eax, 0x12345678');

  function straddling(access: 'not-present' | 'ept-violation') {
    const bus = new TestBus();
    bus.load(0x1ffe, mov); // 2 bytes on the first page, 3 on the next
    bus.setAccess(0x2000, access);
    const cpu = resetCpu(0x1ffe, 0x80000);
    const before = structuredClone(cpu);
    return { outcome: stepOnce({ cpu, bus }), cpu, before };
  }

  test('an instruction that crosses into a not-present page faults on the second page (#PF, I/D set)', () => {
    const { outcome, cpu, before } = straddling('not-present');
    assert.deepEqual(outcome, { kind: 'exception', vector: 14, errorCode: 0x10, cr2: 0x2000 });
    assert.deepEqual(cpu, before);
  });

  test('... or exits with the EPT violation, length 0 because nothing was decoded', () => {
    const { outcome } = straddling('ept-violation');
    assert.deepEqual(outcome, { kind: 'exit', reason: 48, qualification: 4 | (1 << 7) | (1 << 8), length: 0, gla: 0x2000, gpa: 0x2000 });
  });

  test('a not-present first byte faults at EIP', () => {
    const machine = machineWith(nasm('nop'));
    machine.cpu.eip = 0x7000;
    machine.bus.setAccess(0x7000, 'not-present');
    assert.deepEqual(stepOnce(machine), { kind: 'exception', vector: 14, errorCode: 0x10, cr2: 0x7000 });
  });

  test('an instruction that ends exactly at the page end does not touch the next page', () => {
    const bus = new TestBus();
    bus.load(0x2000 - mov.length, mov);
    bus.setAccess(0x2000, 'not-present');
    const cpu = resetCpu(0x2000 - mov.length, 0x80000);
    assert.deepEqual(stepOnce({ cpu, bus }), { kind: 'retired' });
    assert.equal(hex(cpu.gpr[0]), '0x12345678');
    assert.equal(cpu.eip, 0x2000);
  });
});
