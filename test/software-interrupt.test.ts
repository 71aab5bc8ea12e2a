/**
 * INT n is not an exception: the VMX exception bitmap does not apply to it (SDM Vol. 3C,
 * "Other Causes of VM Exits"), so a guest's `int 14` goes to its own IDT under shadow paging,
 * where Xen intercepts every #PF, exactly as under EPT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitReason } from '../src/core/hardware/cpu/outcomes.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { initialState } from '../src/core/machine/state.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { replayX86Step } from '../src/replay/forensics/cpu-replay.ts';
import { runMachine } from '../property-tests/helpers.ts';

const scenario = (paging: 'ept' | 'shadow'): string => `
seed: 1
machine: { memoryMiB: 2, pcpus: 1, profile: vanilla }
dom0: { memoryKiB: 16 }
domains:
  - name: guest
    memoryKiB: 64
    paging: ${paging}
    guest:
      x86:
        asm: |
          bits 32
          org 0x1000
          start:
            mov dword [0x6c00 + 14 * 8], handler
            mov dword [0x6c00 + 14 * 8 + 4], 0x8e00
            lidt [idt_desc]
            int 14
            mov eax, 0x600d
            out 0xe9, al
            cli
            hlt
          handler:
            mov ebx, 0x14
            iretd
          idt_desc:
            dw 0x7f
            dd 0x6c00
`;

for (const paging of ['ept', 'shadow'] as const) {
  test(`int 14 under ${paging} paging is delivered through the guest's IDT, not taken as a #PF exit`, () => {
    const events = runMachine(parseScenario(scenario(paging), `int14-${paging}.yaml`), 20_000);
    const delivered = events.filter((e) => e.kind === 'exception');
    assert.deepEqual(delivered.map((e) => e.kind === 'exception' && e.vector), [14]);
    const pfExits = events.filter((e) => e.kind === 'vm.exit' && e.reason === ExitReason.EXCEPTION_NMI && e.vector === 14 && e.qualification === 0 && e.gla === -1);
    assert.equal(pfExits.length, 0, 'no #PF exit for the software interrupt');
    const port = events.filter((e) => e.kind === 'io' && e.port === 0xe9).map((e) => e.kind === 'io' && e.value);
    assert.deepEqual(port, [0x0d], 'the handler returned and the guest went on');
  });
}

test('forensics re-executes int 14 under shadow paging as the machine ran it: delivered through the IDT, its frame the step\'s write', () => {
  const config = parseScenario(scenario('shadow'), 'int14-shadow.yaml');
  const events = runMachine(config, 20_000);
  const state = initialState(config);
  const at = events.findIndex((e) => e.kind === 'exception');
  // The step the int 14 opens: a cpu.step would have retired it, so it is the instruction's delivery.
  for (const e of events.slice(0, at)) evolve(state, e);
  const step = replayX86Step(state, events[at]);
  assert.equal(step?.outcome, 'delivered');
  assert.equal(step?.delivered, 14);
  const next = events.slice(at + 1).findIndex((e) => e.kind === 'cpu.step' || e.kind === 'exception' || e.kind === 'vm.exit');
  const writes = events.slice(at, at + 1 + next).filter((e) => e.kind === 'mem.write');
  assert.equal(step?.commits.length, writes.length, 'one committed store per mem.write of the step');
});
