// Event delivery through the guest IDT (SDM Vol. 3, 6.12-6.15): the stack frame, which EIP is
// pushed, error codes, CR2, interrupt vs trap gates, the gate checks (#GP over the limit or
// with a bad type, #NP when not present, both with IDT = 1 and EXT in the error code), and
// the escalation rules: serial after a benign event, #DF after contributory/#PF pairs, triple
// fault during #DF delivery. Programs build their own IDT and load it with LIDT.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { causesDoubleFault, deliverEvent, resetCpu } from '../src/core/hardware/cpu/index.ts';
import { CODE_BASE, STACK_TOP, TestBus, assembleMachine, hex, register, run, runSteps } from './fixtures/cpu/harness.ts';

interface GateSpec {
  readonly vector: number;
  readonly handler: string;
  readonly type?: 'interrupt' | 'trap' | 'task';
  readonly present?: boolean;
}

/** Gates as NASM data: offset 15:0, selector 0x08, P DPL 0 type, offset 31:16. */
function idtSource(gates: readonly GateSpec[], vectors: number): string {
  const lines = ['align 8', 'idt:'];
  for (let vector = 0; vector < vectors; vector += 1) {
    const gate = gates.find((entry) => entry.vector === vector);
    if (gate === undefined) {
      lines.push('dq 0');
      continue;
    }
    const type = gate.type === 'trap' ? 0x0f : gate.type === 'task' ? 0x05 : 0x0e;
    const access = ((gate.present ?? true) ? 0x80 : 0) | type;
    lines.push(`dw (${gate.handler} - $$ + ${CODE_BASE}) & 0xffff, 0x08, ${hex(access << 8)}, (${gate.handler} - $$ + ${CODE_BASE}) >> 16`);
  }
  lines.push('idt_end:', 'idtr:', 'dw idt_end - idt - 1', 'dd idt');
  return lines.join('\n');
}

function program(body: string, gates: readonly GateSpec[], vectors = 32) {
  return assembleMachine(`lidt [idtr]\n${body}\n${idtSource(gates, vectors)}`);
}

describe('delivery', () => {
  test('#DE: a fault pushes EFLAGS, CS, the EIP of the DIV; the handler fixes ECX and IRETD retries', () => {
    const machine = program(
      `sti
      mov eax, 100
      xor ecx, ecx
      xor edx, edx
    divide:
      div ecx
      hlt
    de_handler:
      mov ecx, 4
      mov ebx, [esp]
      mov esi, [esp+4]
      mov edi, [esp+8]
      pushfd
      pop ebp
      iretd`,
      [{ vector: 0, handler: 'de_handler' }],
    );
    const result = run(machine, { deliver: true });
    assert.deepEqual(result.deliveries, ['delivered']);
    assert.equal(register(machine, 'eax'), 25);
    assert.equal(register(machine, 'ebx'), CODE_BASE + 7 + 1 + 5 + 2 + 2, 'pushed EIP is the DIV itself');
    assert.equal(register(machine, 'esi'), 0x08);
    assert.equal(hex(register(machine, 'edi')), '0x246', 'pushed EFLAGS has IF set (and the XOR flags)');
    assert.equal(register(machine, 'ebp') & 0x200, 0, 'an interrupt gate clears IF');
    assert.equal(machine.cpu.eflags & 0x200, 0x200, 'IRETD restored IF');
    assert.equal(register(machine, 'esp'), STACK_TOP);
  });

  test('#PF: error code pushed, CR2 loaded; the handler redirects ESI and the load is retried', () => {
    const machine = program(
      `mov esi, 0x7000
      mov eax, [esi+4]
      mov edi, 0x7ffc
      mov dword [edi], 1
      hlt
    pf_handler:
      pop ebx
      mov edx, cr2
      mov [0x3100 + ebx*4], edx
      mov esi, 0x3000
      mov edi, 0x3200
      iretd`,
      [{ vector: 14, handler: 'pf_handler' }],
    );
    machine.bus.setAccess(0x7000, 'not-present');
    machine.bus.poke32(0x3004, 0xfeed);
    const result = run(machine, { deliver: true });
    assert.deepEqual(result.deliveries, ['delivered', 'delivered']);
    assert.equal(machine.bus.peek32(0x3200), 1, 'the store was retried at the new EDI');
    assert.equal(hex(register(machine, 'eax')), '0xfeed');
    assert.equal(hex(machine.bus.peek32(0x3100)), '0x7004', 'read fault: error code 0, CR2 = 0x7004');
    assert.equal(hex(machine.bus.peek32(0x3108)), '0x7ffc', 'write fault: error code 2 (W/R), CR2 = 0x7ffc');
    assert.equal(hex(machine.cpu.cr2), '0x7ffc');
  });

  test('INT n through a trap gate pushes the next EIP, keeps IF and pushes no error code', () => {
    const machine = program(
      `sti
      int 13
      mov ecx, 1
      hlt
    soft_handler:
      mov ebx, [esp]
      pushfd
      pop edx
      iretd`,
      [{ vector: 13, handler: 'soft_handler', type: 'trap' }],
    );
    const result = run(machine, { deliver: true });
    assert.deepEqual(result.deliveries, ['delivered']);
    assert.equal(register(machine, 'ebx'), CODE_BASE + 7 + 1 + 2, 'return address is after INT 13');
    assert.equal(register(machine, 'edx') & 0x200, 0x200, 'a trap gate keeps IF');
    assert.equal(register(machine, 'ecx'), 1);
    assert.equal(register(machine, 'esp'), STACK_TOP);
  });

  test('an external interrupt pushes the current EIP (the next instruction to run)', () => {
    const machine = program('nop\nhlt\nirq_handler:\niretd', [{ vector: 0x20, handler: 'irq_handler' }], 0x21);
    runSteps(machine, 2); // LIDT, NOP
    const eip = machine.cpu.eip;
    assert.equal(deliverEvent(machine.cpu, machine.bus, 0x20, null, false), 'delivered');
    machine.bus.commit();
    assert.equal(machine.bus.peek32(STACK_TOP - 12), eip);
    assert.equal(register(machine, 'esp'), STACK_TOP - 12);
  });

  test('software delivery without an instruction length decodes the INT at EIP', () => {
    const machine = program('int 0x21\nhlt\nh:\niretd', [{ vector: 0x21, handler: 'h' }], 0x22);
    runSteps(machine, 1);
    const eip = machine.cpu.eip;
    assert.equal(deliverEvent(machine.cpu, machine.bus, 0x21, null, true), 'delivered');
    machine.bus.commit();
    assert.equal(machine.bus.peek32(STACK_TOP - 12), eip + 2);
  });
});

describe('gate checks and escalation', () => {
  test('#UD through a not-present gate: #NP(6*8+2+EXT) delivered serially', () => {
    const machine = program(
      `db 0x0f, 0x0b
    np_handler:
      pop ebx
      hlt`,
      [{ vector: 6, handler: 'np_handler', present: false }, { vector: 11, handler: 'np_handler' }],
    );
    const result = run(machine, { deliver: true });
    assert.deepEqual(result.deliveries, ['delivered']);
    assert.equal(hex(register(machine, 'ebx')), hex(6 * 8 + 2 + 1));
  });

  test('INT n beyond the IDT limit: #GP(n*8+2), EXT clear for a software interrupt', () => {
    const machine = program('int 0x40\ngp_handler:\npop ebx\nhlt', [{ vector: 13, handler: 'gp_handler' }]);
    run(machine, { deliver: true });
    assert.equal(hex(register(machine, 'ebx')), hex(0x40 * 8 + 2));
  });

  test('a task gate is not supported: #GP with the gate in the error code', () => {
    const machine = program('int 0x10\ngp_handler:\npop ebx\nhlt', [{ vector: 0x10, handler: 'gp_handler', type: 'task' }, { vector: 13, handler: 'gp_handler' }]);
    run(machine, { deliver: true });
    assert.equal(hex(register(machine, 'ebx')), hex(0x10 * 8 + 2));
  });

  test('#GP through a not-present gate: #NP is contributory, so a double fault (error code 0)', () => {
    const machine = program(
      `rdmsr
    df_handler:
      pop ebx
      hlt`,
      [{ vector: 13, handler: 'df_handler', present: false }, { vector: 8, handler: 'df_handler' }],
    );
    machine.cpu.gpr[3] = 0xffff;
    const result = run(machine, { deliver: true });
    assert.deepEqual(result.deliveries, ['double-fault']);
    assert.equal(register(machine, 'ebx'), 0);
  });

  test('... and with the #DF gate not present either: triple fault, CPU unchanged', () => {
    const machine = program('rdmsr\nh:\nhlt', [{ vector: 13, handler: 'h', present: false }, { vector: 8, handler: 'h', present: false }]);
    runSteps(machine, 1);
    const before = structuredClone(machine.cpu);
    const result = run(machine, { deliver: true });
    assert.equal(result.last, 'triple-fault');
    assert.deepEqual(machine.cpu, before);
  });

  test('#PF while pushing the #PF frame: double fault, and with no stack left for it, triple fault', () => {
    const machine = program('mov eax, [0x7000]\nh:\nhlt', [{ vector: 14, handler: 'h' }, { vector: 8, handler: 'h' }]);
    machine.bus.setAccess(0x7000, 'not-present');
    machine.bus.setAccess(STACK_TOP - 4, 'not-present');
    const result = run(machine, { deliver: true });
    assert.equal(result.last, 'triple-fault');
  });

  test('#PF reading the #UD gate (benign first): the #PF is delivered serially, with CR2', () => {
    // IDT straddles a page boundary: gate 6 lies on a not-present page, gate 14 on the next one.
    const bus = new TestBus();
    const base = 0x5000 - 64;
    bus.poke32(base + 14 * 8, 0x00089000);
    bus.poke32(base + 14 * 8 + 4, 0x00008e00);
    bus.setAccess(base, 'not-present');
    const cpu = { ...resetCpu(0x1000, 0x9000), idtrBase: base, idtrLimit: 0x7ff };
    assert.equal(deliverEvent(cpu, bus, 6, null, false), 'delivered');
    bus.commit();
    assert.equal(hex(cpu.eip), '0x9000');
    assert.equal(hex(cpu.cr2), hex(base + 6 * 8));
    assert.equal(bus.peek32(0x9000 - 16), 0, 'error code: read of a not-present page');
    assert.equal(bus.peek32(0x9000 - 12), 0x1000, 'the #UD instruction is the return address');
  });

  test('an EPT violation while pushing is returned as an exit-type fault and nothing changes', () => {
    const machine = program('db 0x0f, 0x0b\nh:\nhlt', [{ vector: 6, handler: 'h' }]);
    runSteps(machine, 1);
    machine.bus.setAccess(STACK_TOP - 8, 'ept-violation');
    const before = structuredClone(machine.cpu);
    const result = deliverEvent(machine.cpu, machine.bus, 6, null, false);
    assert.equal(typeof result, 'object');
    assert.equal(typeof result === 'object' && result.kind === 'exit' && result.reason, 48);
    assert.deepEqual(machine.cpu, before);
  });

  test('Table 6-5 classes', () => {
    const contributory = [0, 10, 11, 12, 13];
    for (const first of [0, 10, 11, 12, 13]) {
      for (const second of contributory) assert.ok(causesDoubleFault(first, false, second), `${first} then ${second}`);
      assert.ok(!causesDoubleFault(first, false, 14), `${first} then #PF is serial`);
    }
    assert.ok(causesDoubleFault(14, false, 14));
    assert.ok(causesDoubleFault(14, false, 13));
    assert.ok(!causesDoubleFault(6, false, 13), 'benign first');
    assert.ok(!causesDoubleFault(13, true, 13), 'INT 13 is not an exception');
  });
});

test('deliverEvent on a bare CPU with the reset IDTR (base 0, limit 0xffff) reads gate 0 from address 0', () => {
  const bus = new TestBus();
  bus.poke32(0, 0x00085000);
  bus.poke32(4, 0x00008e00);
  const cpu = resetCpu(0x1000, 0x9000);
  assert.equal(deliverEvent(cpu, bus, 0, null, false), 'delivered');
  assert.equal(hex(cpu.eip), '0x5000');
});
