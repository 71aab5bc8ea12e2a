/**
 * Xen's shadow cache: the shadows of recently used address spaces are kept across CR3 loads,
 * so a guest switching back to one does not rebuild it fault by fault, and a kept shadow is
 * resynchronised with the guest's tables before it is used again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event } from '../src/events/schema.ts';
import { ExitReason } from '../src/core/hardware/cpu/outcomes.ts';
import { SHADOW_CACHE_ADDRESS_SPACES } from '../src/core/hypervisor/vmx/handlers.ts';
import { runMachine } from '../property-tests/helpers.ts';
import { ADDRESS_SPACES, addressSpaceAsm, buildScenario, type AddressSpaceStep } from '../property-tests/x86-arbitraries.ts';

function run(steps: AddressSpaceStep[], paging: 'ept' | 'shadow'): Event[] {
  const scenario = buildScenario({ seed: 1, profile: 'secure', paging, memoryKiB: ADDRESS_SPACES.kib, asm: addressSpaceAsm(steps), victim: false, timeslice: 100_000 });
  return runMachine(scenario.config, 400_000);
}

/** #PF exits (the shadow's misses) in each segment of the run between CR3 loads of space A or B. */
const shadowMisses = (events: Event[]): number => events.filter((e) => e.kind === 'vm.exit' && e.reason === ExitReason.EXCEPTION_NMI).length;
const lastSwitchAt = (events: Event[]): number => events.findLastIndex((e) => e.kind === 'shadow.switch');
const esiAtEnd = (events: Event[]): number => {
  // ESI is register 6 of the delta; the guest sums what it read into it.
  let esi = 0;
  for (const e of events) {
    if (e.kind !== 'cpu.step') continue;
    for (let i = 0; i < e.delta.length; i += 2) if (e.delta[i] === 6) esi = e.delta[i + 1];
  }
  return esi;
};

const touchAll = (): AddressSpaceStep[] => [0, 1, 2, 3].map((page) => ({ kind: 'read', page, dword: 0 }));

test('a switch back to a kept address space takes no shadow misses for the pages it had', () => {
  const events = run([...touchAll(), { kind: 'switch', to: 'B' }, ...touchAll(), { kind: 'switch', to: 'A' }, ...touchAll()], 'shadow');
  const back = lastSwitchAt(events);
  assert.ok(back > 0, 'the CR3 loads are shadow.switch events');
  assert.equal(shadowMisses(events.slice(back)), 0);
  const sw = events[back] as Extract<Event, { kind: 'shadow.switch' }>;
  assert.equal(sw.restore, ADDRESS_SPACES.pdA >>> 12, 'space A is restored');
  assert.ok(sw.refs > 0, 'the resync walked the guest tables');
});

test('a kept shadow is resynchronised: the guest sees the frame its table names now, as under EPT', () => {
  const steps: AddressSpaceStep[] = [
    ...touchAll(), { kind: 'switch', to: 'B' },
    { kind: 'retarget', space: 'A', page: 2, frame: 0 },
    { kind: 'switch', to: 'A' }, ...touchAll(),
  ];
  const shadow = run(steps, 'shadow');
  const ept = run(steps, 'ept');
  assert.equal(esiAtEnd(shadow), esiAtEnd(ept));
  const back = lastSwitchAt(shadow);
  assert.ok(shadow.slice(back).some((e) => e.kind === 'shadow.sync' && e.op === 'flush' && e.page === ((ADDRESS_SPACES.window >>> 12) + 2)), 'the changed page is dropped');
  assert.equal(shadowMisses(shadow.slice(back)), 1, 'only the changed page is filled again');
});

test(`at most ${SHADOW_CACHE_ADDRESS_SPACES} address spaces are kept besides the running one, the least recently used dropped first`, () => {
  // Page directories at 0x20000 + 0x1000 * i, all mapping the guest one to one; CR3 goes
  // through more of them than are kept, in an order that revisits some.
  const spaces = SHADOW_CACHE_ADDRESS_SPACES + 3;
  const order = [...Array(spaces).keys(), 3, 0, spaces - 1, 5, 1, 2, 9, 0];
  const pd = (i: number): number => 0x20000 + 0x1000 * i;
  const asm = [
    'bits 32', 'org 0x1000', 'start:',
    '  mov edi, 0x12000', '  mov eax, 3', '  mov ecx, 64',
    'fill:', '  mov [edi], eax', '  add eax, 0x1000', '  add edi, 4', '  dec ecx', '  jnz fill',
    ...[...Array(spaces).keys()].map((i) => `  mov dword [0x${pd(i).toString(16)}], 0x12003`),
    `  mov eax, 0x${pd(0).toString(16)}`, '  mov cr3, eax', '  mov eax, cr0', '  or eax, 0x80000000', '  mov cr0, eax',
    ...order.flatMap((i) => [`  mov eax, 0x${pd(i).toString(16)}`, '  mov cr3, eax', '  mov ebx, [0x8000]']),
    '  mov eax, 29', '  mov ebx, 2', '  vmcall',
  ].join('\n');
  const scenario = buildScenario({ seed: 1, profile: 'secure', paging: 'shadow', memoryKiB: 256, asm, victim: false, timeslice: 100_000 });
  const switches = runMachine(scenario.config, 400_000).filter((e) => e.kind === 'shadow.switch');
  assert.equal(switches.length, order.length, 'one switch per CR3 load with paging on (the first is made before)');
  // A model of the cache: least recently used first.
  let kept: number[] = [];
  for (const e of switches) {
    kept = kept.filter((cr3) => cr3 !== e.restore && cr3 !== e.save);
    if (e.save !== e.restore) kept.push(e.save);
    const expected = kept.length > SHADOW_CACHE_ADDRESS_SPACES ? kept.shift()! : -1;
    assert.equal(e.evict, expected, `switch from 0x${(e.save * 4096).toString(16)} to 0x${(e.restore * 4096).toString(16)}`);
  }
  assert.ok(switches.some((e) => e.evict >= 0), 'the cache overflowed at least once');
});
