// Data movement, the stack, string instructions and control transfer, as small programs
// assembled by nasm and run to HLT; plus the restartability contract (a faulting instruction
// leaves the CPU exactly as it was and its buffered writes are discarded).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { cpuDelta } from '../src/core/hardware/cpu/index.ts';
import { CODE_BASE, STACK_TOP, assembleMachine, hex, prepareSnippet, register, run, stepOnce } from './fixtures/cpu/harness.ts';

describe('data movement', () => {
  test('MOV of every width keeps the rest of the register; moffs forms', () => {
    const machine = prepareSnippet(
      'mov eax, 0x11223344\nmov ah, 0xaa\nmov bx, 0xbbbb\nmov [0x3000], eax\nmov cl, [0x3001]\nmov [0x3004], ax\nmov edx, [0x3004]',
      { registers: { ebx: 0x12345678, ecx: 0xffffffff }, memory: { 0x3004: 0xdeadbeef } },
    );
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0x1122aa44');
    assert.equal(hex(register(machine, 'ebx')), '0x1234bbbb');
    assert.equal(hex(register(machine, 'ecx')), '0xffffffaa');
    assert.equal(hex(register(machine, 'edx')), '0xdeadaa44');
    assert.equal(hex(machine.bus.peek32(0x3000)), '0x1122aa44');
  });

  test('MOVZX and MOVSX from bytes and words', () => {
    const machine = prepareSnippet(
      'movzx eax, bl\nmovsx ecx, bl\nmovsx dx, bl\nmovzx esi, word [0x3000]\nmovsx edi, word [0x3000]',
      { registers: { ebx: 0x80, edx: 0x12345678 }, memory: { 0x3000: 0x8001 } },
    );
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0x80');
    assert.equal(hex(register(machine, 'ecx')), '0xffffff80');
    assert.equal(hex(register(machine, 'edx')), '0x1234ff80');
    assert.equal(hex(register(machine, 'esi')), '0x8001');
    assert.equal(hex(register(machine, 'edi')), '0xffff8001');
  });

  test('LEA computes base + index * scale + displacement modulo 2^32 and touches no memory', () => {
    const machine = prepareSnippet('lea eax, [ebx+ecx*8+0x10]\nlea dx, [ebx+ecx*8+0x10]\nlea esi, [0xfffffff0]', {
      registers: { ebx: 0xfffffff0, ecx: 1, edx: 0xabcd0000 },
    });
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0x8');
    assert.equal(hex(register(machine, 'edx')), '0xabcd0008');
    assert.equal(hex(register(machine, 'esi')), '0xfffffff0');
  });

  test('XCHG with memory uses the address computed before either write', () => {
    const machine = prepareSnippet('xchg [eax], eax\nxchg bl, bh', { registers: { eax: 0x3000, ebx: 0x1122 }, memory: { 0x3000: 0xcafe } });
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0xcafe');
    assert.equal(hex(machine.bus.peek32(0x3000)), '0x3000');
    assert.equal(hex(register(machine, 'ebx')), '0x2211');
  });
});

describe('stack', () => {
  test('PUSH ESP pushes the value before the decrement', () => {
    const machine = prepareSnippet('push esp');
    run(machine);
    assert.equal(register(machine, 'esp'), STACK_TOP - 4);
    assert.equal(machine.bus.peek32(STACK_TOP - 4), STACK_TOP);
  });

  test('POP ESP loads the popped value, not the incremented pointer', () => {
    const machine = prepareSnippet('push dword 0x12345\npop esp');
    run(machine);
    assert.equal(hex(register(machine, 'esp')), '0x12345');
  });

  test('POP [ESP] computes the address after incrementing ESP', () => {
    const machine = prepareSnippet('push dword 0xaaaa\npush dword 0xbbbb\npop dword [esp]');
    run(machine);
    assert.equal(register(machine, 'esp'), STACK_TOP - 4);
    assert.equal(hex(machine.bus.peek32(STACK_TOP - 4)), '0xbbbb');
  });

  test('PUSH [ESP] reads with the old ESP; PUSH imm8 is sign-extended', () => {
    const machine = prepareSnippet('push dword 0x77\npush dword [esp]\npush -2\npop eax\npop ebx\npop ecx');
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0xfffffffe');
    assert.equal(hex(register(machine, 'ebx')), '0x77');
    assert.equal(hex(register(machine, 'ecx')), '0x77');
  });

  test('PUSHAD stores the original ESP; POPAD skips the ESP slot', () => {
    const machine = prepareSnippet('pushad\nmov dword [esp+12], 0x5555\nmov dword [esp+28], 0xa\npopad', {
      registers: { eax: 1, ecx: 2, edx: 3, ebx: 4, ebp: 6, esi: 7, edi: 8 },
    });
    const frame = STACK_TOP - 32;
    stepOnce(machine);
    assert.deepEqual([0, 4, 8, 12, 16, 20, 24, 28].map((offset) => machine.bus.peek32(frame + offset)), [8, 7, 6, STACK_TOP, 4, 3, 2, 1]);
    run(machine);
    assert.deepEqual(machine.cpu.gpr, [0xa, 2, 3, 4, STACK_TOP, 6, 7, 8]);
  });

  test('PUSHFD/POPFD: only CF PF AF ZF SF TF IF DF OF are writable, bit 1 reads 1', () => {
    const machine = prepareSnippet('push dword 0xffffffff\npopfd\npushfd\npop eax\npush dword 0\npopfd\npushfd\npop ebx');
    run(machine);
    assert.equal(hex(register(machine, 'eax')), '0xfd7');
    assert.equal(hex(register(machine, 'ebx')), '0x2');
  });

  test('CALL/RET, CALL r/m32, JMP r/m32 and RET imm16', () => {
    const machine = assembleMachine(`
      push dword 11
      push dword 22
      call add_two
      mov esi, eax
      mov ebx, target
      call ebx
      mov dword [0x3000], after
      jmp [0x3000]
      mov esi, 0xbad
    after:
      hlt
    add_two:
      mov eax, [esp+4]
      add eax, [esp+8]
      ret 8
    target:
      mov edi, [esp]
      ret
    `);
    run(machine);
    assert.equal(register(machine, 'esi'), 33);
    assert.equal(register(machine, 'esp'), STACK_TOP);
    assert.ok(register(machine, 'edi') > CODE_BASE, 'CALL r/m32 pushed the return address');
  });

  test('LOOP counts ECX down to 0 without touching flags', () => {
    const machine = prepareSnippet('again:\ninc eax\nloop again', { registers: { ecx: 5 }, flags: 'CF' });
    run(machine);
    assert.equal(register(machine, 'eax'), 5);
    assert.equal(register(machine, 'ecx'), 0);
    assert.equal(machine.cpu.eflags & 1, 1);
  });
});

describe('string instructions, one element per step', () => {
  test('REP STOSD with ECX = 0 retires in one step and writes nothing', () => {
    const machine = prepareSnippet('rep stosd', { registers: { ecx: 0, edi: 0x3000, eax: 0x55 } });
    const outcome = stepOnce(machine);
    assert.deepEqual(outcome, { kind: 'retired' });
    assert.equal(machine.cpu.eip, CODE_BASE + 2);
    assert.equal(register(machine, 'edi'), 0x3000);
    assert.equal(machine.bus.committedWrites, 0);
  });

  test('REP MOVSB with DF = 1 copies downwards, EIP stays until ECX reaches 0', () => {
    const machine = prepareSnippet('rep movsb', { registers: { ecx: 3, esi: 0x3002, edi: 0x4002 }, flags: 'DF', memory: { 0x3000: 0x00332211 } });
    const eips: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      assert.equal(stepOnce(machine).kind, 'retired');
      eips.push(machine.cpu.eip);
    }
    assert.deepEqual(eips, [CODE_BASE, CODE_BASE, CODE_BASE + 2]);
    assert.equal(hex(machine.bus.peek32(0x4000)), '0x332211');
    assert.equal(register(machine, 'esi'), 0x2fff);
    assert.equal(register(machine, 'edi'), 0x3fff);
    assert.equal(register(machine, 'ecx'), 0);
  });

  test('MOVSW, STOSW, LODSD, LODSB without REP', () => {
    const machine = prepareSnippet('movsw\nstosw\nlodsd\nlodsb', {
      registers: { esi: 0x3000, edi: 0x4000, eax: 0xffff9999 },
      memory: { 0x3000: 0x44332211, 0x3004: 0x88776655, 0x3008: 0xaa },
    });
    run(machine);
    assert.equal(hex(machine.bus.peek32(0x4000)), '0x99992211');
    assert.equal(register(machine, 'esi'), 0x3000 + 2 + 4 + 1);
    assert.equal(register(machine, 'edi'), 0x4004);
    assert.equal(hex(register(machine, 'eax')), '0x66554477', 'LODSD read 0x66554433, then LODSB replaced only AL');
  });

  test('a REP STOSB that reaches a read-only page faults with ECX counting the work done', () => {
    const machine = prepareSnippet('rep stosb', { registers: { ecx: 10, edi: 0x4ffe, eax: 0x7a } });
    machine.bus.setAccess(0x5000, 'read-only');
    assert.equal(stepOnce(machine).kind, 'retired');
    assert.equal(stepOnce(machine).kind, 'retired');
    const before = structuredClone(machine.cpu);
    const outcome = stepOnce(machine);
    assert.deepEqual(outcome, { kind: 'exception', vector: 14, errorCode: 3, cr2: 0x5000 });
    assert.deepEqual(machine.cpu, before, 'the faulting iteration changed nothing');
    assert.equal(register(machine, 'ecx'), 8);
    assert.equal(machine.cpu.eip, CODE_BASE, 'EIP still on REP STOSB, ready to resume');
  });
});

describe('restartability', () => {
  test('a PUSH onto a read-only page: #PF, CPU unchanged, buffered writes discarded', () => {
    const machine = prepareSnippet('pushad');
    machine.bus.setAccess(STACK_TOP - 32, 'read-only'); // the page below STACK_TOP
    const before = structuredClone(machine.cpu);
    const outcome = stepOnce(machine);
    assert.equal(outcome.kind, 'exception');
    assert.deepEqual(cpuDelta(before, machine.cpu), []);
    assert.equal(machine.bus.pendingWrites, 0);
    assert.equal(machine.bus.committedWrites, 0);
  });

  test('an EPT violation on a data write becomes an exit carrying the instruction and its length', () => {
    const machine = prepareSnippet('mov [0x6000], eax');
    machine.bus.setAccess(0x6000, 'ept-violation');
    const outcome = stepOnce(machine);
    assert.equal(outcome.kind, 'exit');
    if (outcome.kind !== 'exit') return;
    assert.equal(outcome.reason, 48);
    assert.equal(outcome.length, 5);
    assert.equal(outcome.gla, 0x6000);
    assert.equal(outcome.instruction?.mnemonic, 'mov');
    assert.equal(machine.cpu.eip, CODE_BASE);
  });
});

describe('a whole program', () => {
  test('iterative Fibonacci with a memory table, CALL and LOOP', () => {
    const machine = assembleMachine(`
      mov edi, 0x3000
      mov ecx, 20
      call fill
      mov eax, [0x3000 + 19*4]
      hlt
    fill:
      xor eax, eax
      mov ebx, 1
    next:
      stosd
      xchg eax, ebx
      add ebx, eax
      loop next
      ret
    `);
    const result = run(machine);
    assert.deepEqual(result.last, { kind: 'retired', halted: true });
    assert.equal(register(machine, 'eax'), 4181);
  });
});
