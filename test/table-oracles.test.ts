/**
 * The oracles over the tables read what the hardware would use, not the events that built
 * it: a table entry corrupted with no event at all (what a bug in the code that builds the
 * table does while its events look right) is caught by them, and by none of the
 * invariants over events; an untouched machine breaks none of them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { EventOf } from '../src/events/schema.ts';
import { eptSet } from '../src/core/hardware/paging/ept.ts';
import { vtdIrte, vtdSecondLevelEntry, vtdUnmapPageWrites } from '../src/core/hardware/iommu/vtd-tables.ts';
import { hostPhysicalMemory, writeXenWords } from '../src/core/hypervisor/memory/host-frames.ts';
import type { MachineState } from '../src/core/machine/state.ts';
import { guestTableConfined } from '../src/core/machine/invariants/guest-table-confined.ts';
import { vlanConfined } from '../src/core/machine/invariants/vlan-confined.ts';
import { ATTACKER, frameHex, type Action } from '../src/fuzz/actions.ts';
import { FuzzMachine, Coverage } from '../src/fuzz/fuzz-machine.ts';
import { PARKED_X86, type CaseShape } from '../src/fuzz/case.ts';

const MAX_EVENTS = 200_000;

function machine(paging: CaseShape['paging']): FuzzMachine {
  return new FuzzMachine({ seed: 1, pcpus: 1, quantum: 2, paging }, 'secure', [], MAX_EVENTS, new Coverage());
}

function domainId(state: MachineState, name: string): number {
  const found = [...state.domains.values()].find((d) => d.name === name && d.status === 'running');
  assert.ok(found, `no running domain ${name}`);
  return found.id;
}

function frameOf(state: MachineState, name: string, gfn: number): number {
  const mfn = state.domains.get(domainId(state, name))!.p2m.get(gfn);
  assert.ok(mfn !== undefined, `${name} has no gfn ${gfn}`);
  return mfn;
}

/** A 64-bit table word written straight into Xen's memory: no event says so. */
function corruptWord(state: MachineState, hpa: number, value: bigint): void {
  writeXenWords(state, [hpa, Number(value & 0xffffffffn), Number(value >> 32n)]);
}

const runAttacker: Action = { kind: 'x86', image: PARKED_X86 };
const invariants = (violations: readonly EventOf<'violation'>[]): string[] => violations.map((v) => `${v.invariant}: ${v.detail}`);

describe('guest-table-confined', () => {
  test('an untouched machine enters its guests on confined tables (EPT and shadow)', () => {
    for (const paging of ['ept', 'shadow'] as const) {
      const m = machine(paging);
      assert.deepEqual(invariants(m.apply(runAttacker)), [], paging);
    }
  });

  test('an EPT leaf pointed at another tenant\'s frame, with no event, is caught at the next VM entry and by no other invariant', () => {
    const m = machine('ept');
    const erin = domainId(m.state, ATTACKER);
    const alicesFrame = frameOf(m.state, 'alice', 0);
    eptSet(m.state.domains.get(erin)!.ept, 3, { mfn: alicesFrame, bits: 7 });
    const found = m.apply(runAttacker);
    assert.ok(found.length > 0, 'the corrupted EPT went unnoticed');
    assert.equal(found[0].invariant, 'guest-table-confined', invariants(found).join('\n'));
    assert.match(found[0].detail, new RegExp(`EPT leaf mapping gfn 0x3 to frame ${alicesFrame}, owned by alice`));
    assert.deepEqual(new Set(found.map((v) => v.invariant)), new Set(['guest-table-confined']));
  });

  test('the BAR window\'s misconfigured EPT entries (every access exits) are not a breach; a translating one to frame 0 is', () => {
    const m = machine('ept');
    const erin = domainId(m.state, ATTACKER);
    const entry: EventOf<'vm.entry'> = ({ kind: 'vm.entry', dom: erin, vcpu: 0, delta: [], inject: -1, errorCode: 0 });
    const window = 0xf0000000 / 4096;
    assert.equal(guestTableConfined.check(m.state, entry), undefined);
    eptSet(m.state.domains.get(erin)!.ept, window, { mfn: 0, bits: 3 });
    assert.match(guestTableConfined.check(m.state, entry)?.detail ?? '', /gfn 0xf0000 to frame 0, owned by nobody/);
  });

  test('a shadow kept for another address space mapping a foreign frame is caught', () => {
    const m = machine('shadow');
    const erin = domainId(m.state, ATTACKER);
    const bobsFrame = frameOf(m.state, 'bob', 1);
    const x86 = m.state.domains.get(erin)!.vcpus[0].x86!;
    const event: EventOf<'vm.entry'> = { kind: 'vm.entry', dom: erin, vcpu: 0, delta: [], inject: -1, errorCode: 0 };
    assert.equal(guestTableConfined.check(m.state, event), undefined);
    x86.shadowCache.set(0x9, new Map([[0x400, { mfn: bobsFrame, flags: 3 }]]));
    assert.match(guestTableConfined.check(m.state, event)?.detail ?? '', new RegExp(`kept for CR3 0x9000 entry mapping linear page 0x400 to frame ${bobsFrame}, owned by bob`));
    x86.shadowCache.delete(0x9);
    x86.shadow.set(0x5, { mfn: bobsFrame, flags: 3 });
    assert.match(guestTableConfined.check(m.state, event)?.detail ?? '', new RegExp(`a shadow page table entry mapping linear page 0x5 to frame ${bobsFrame}, owned by bob`));
  });
});

describe('iommu-table-confined', () => {
  test('a second-level leaf rewritten to another tenant\'s frame, with no event, is caught at the device\'s next DMA elsewhere (dma-confined sees nothing)', () => {
    const m = machine('ept');
    const alice = domainId(m.state, 'alice');
    const bobsFrame = frameOf(m.state, 'bob', 2);
    const domain = m.state.io.xenVtd.domains.get(alice)!;
    const [leaf] = vtdUnmapPageWrites(hostPhysicalMemory(m.state), { slptptr: domain.slptptr, aw: 2, iova: 0x2000 });
    assert.ok(leaf, 'alice has no IOMMU leaf for iova 0x2000');
    corruptWord(m.state, leaf.hpa, vtdSecondLevelEntry({ read: true, write: true, address: bobsFrame * 4096 }));
    const vf = m.state.io.vfs.find((v) => v.dom === alice)!.vf;
    const found = m.apply({ kind: 'dma', vf, write: false, iova: 0x3000, data: '00', len: 8 });
    assert.ok(found.length > 0, 'the corrupted IOMMU leaf went unnoticed');
    assert.equal(found[0].invariant, 'iommu-table-confined', invariants(found).join('\n'));
    assert.match(found[0].detail, new RegExp(`of alice map iova 0x2000 to frame ${bobsFrame}, owned by bob`));
    assert.ok(!found.some((v) => v.invariant === 'dma-confined'), 'the DMA itself stayed in alice\'s memory');
  });

  test('an interrupt remapping entry whose source id names another tenant\'s VF is caught when Xen next programs the unit', () => {
    const m = machine('ept');
    const alice = domainId(m.state, 'alice');
    const bob = domainId(m.state, 'bob');
    const xen = m.state.io.xenVtd;
    const [index, kept] = [...xen.irtes].find(([, e]) => e.dom === alice)!;
    const bobsVf = m.state.io.vfs.find((v) => v.dom === bob)!;
    const irte = vtdIrte({ vector: kept.vector, destination: kept.vcpu, svt: 1, sq: 0, sid: bobsVf.bdf });
    corruptWord(m.state, xen.irt + index * 16, irte.lo);
    corruptWord(m.state, xen.irt + index * 16 + 8, irte.hi);
    const found = m.apply({ kind: 'dom0', op: 'deassign_vf', domain: 'mallory' });
    assert.ok(found.length > 0, 'the corrupted IRTE went unnoticed');
    assert.equal(found[0].invariant, 'iommu-table-confined', invariants(found).join('\n'));
    assert.match(found[0].detail, new RegExp(`interrupt remapping entry ${index} of alice .* passes the source-id check for device .* of bob`));
  });
});

describe('vlan-confined', () => {
  const frame = (at: string): EventOf<'net.frame'> => ({ kind: 'net.frame', at, dom: 1, vlan: 10, verdict: 'ok', frame: new Uint8Array(14) });

  test('law: a delivered frame breaks it exactly when the VLAN it entered the switch on (a VF\'s port VLAN, or the wire\'s tag) is not the receiver\'s', () => {
    const m = machine('ept');
    const vfs = m.state.io.vfs.filter((v) => v.dom >= 0);
    const port = fc.oneof(fc.constantFrom(...vfs.map((v) => v.vf)), fc.constant('wire' as const));
    fc.assert(fc.property(port, fc.constantFrom(0, 10, 20, 30), fc.constantFrom(...vfs), (from, tag, receiver) => {
      m.state.io.ingress = { port: from, tag };
      const vlan = from === 'wire' ? tag : vfs.find((v) => v.vf === from)!.vlan;
      const breach = vlanConfined.check(m.state, frame(`vf${receiver.vf}.rx`));
      assert.equal(breach !== undefined, vlan !== receiver.vlan, JSON.stringify({ from, tag, receiver: receiver.vf, breach }));
      if (breach) assert.match(breach.detail, new RegExp(`on VLAN ${vlan}.* reached VF ${receiver.vf} .*configured on VLAN ${receiver.vlan}`));
    }));
  });

  test('what a VF sent and what came from the wire is recorded as the ingress, with the tag it carried', () => {
    const m = machine('ept');
    const mallory = m.state.io.vfs.find((v) => v.dom === domainId(m.state, 'mallory'))!;
    m.apply({ kind: 'guest', domain: 'mallory', ops: [{ nic_tx: { dst: '02:00:00:00:00:0a', vlan: 10, hex: '00' } }] });
    assert.deepEqual(m.state.io.ingress, { port: mallory.vf, tag: 10 });
    m.apply({ kind: 'wire', frame: frameHex('02:00:00:00:00:0a', '02:de:ad:be:ef:01', 20, '00') });
    assert.deepEqual(m.state.io.ingress, { port: 'wire', tag: 20 });
  });

  test('the secure switch drops a neighbour\'s frame tagged for the receiver\'s VLAN: nothing breaks', () => {
    const m = machine('ept');
    const found = m.apply({ kind: 'guest', domain: 'mallory', ops: [{ nic_tx: { dst: '02:00:00:00:00:0a', vlan: 10, hex: '00' } }] });
    assert.deepEqual(invariants(found), []);
  });
});
