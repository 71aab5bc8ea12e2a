/**
 * Xen's VT-d driver in the machine: boot, device assignment and DMA through the unit, faults
 * recorded in the FRCDs, unmap with its IOTLB invalidation, the spec's teardown order,
 * remapped MSIs and their faults, vanilla's untranslated DMA, and a fold of the recorded
 * events that gives back the live machine's state.
 */
import { bootRig, since, type Rig } from './helpers/rig.ts';
import { dmaConfined } from '../src/core/machine/invariants/dma-confined.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { evolve } from '../src/core/machine/evolve.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { writeFrameWithKey } from '../src/core/hypervisor/memory/guest-memory.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { PAGE_SIZE, type MachineConfig } from '../src/core/hypervisor/config.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { initialState } from '../src/core/machine/state.ts';
import {
  VTD_GSTS_CFIS, VTD_GSTS_IRES, VTD_GSTS_IRTPS, VTD_GSTS_QIES, VTD_GSTS_RTPS, VTD_GSTS_TES, vtdCompatibilityMsi, vtdStaleEntries,
} from '../src/core/hardware/iommu/index.ts';
import { dmaRead, dmaWrite } from '../src/core/hypervisor/vtd-driver/dma.ts';
import { interruptRequest, msiProgram } from '../src/core/hypervisor/vtd-driver/interrupt-remapping.ts';
import {
  vtdAssignDevice, vtdBoot, vtdDeassignDevice, vtdDestroyDomain, vtdMapPage, vtdServiceFaults, vtdUnmapPage,
} from '../src/core/hypervisor/vtd-driver/iommu-domains.ts';
import { hostPhysicalMemory, writeXenWords } from '../src/core/hypervisor/memory/host-frames.ts';

const scenario = (profile: 'secure' | 'vanilla'): MachineConfig => parseScenario(`seed: 7
machine: { memoryMiB: 4, pcpus: 1, profile: ${profile} }
dom0: { memoryKiB: 256 }
domains:
  - name: alice
    memoryKiB: 64
    guest: { ops: [yield] }
  - name: bob
    memoryKiB: 32
    guest: { ops: [yield] }
  - name: erin
    memoryKiB: 64
    guest:
      x86:
        asm: |
          bits 32
          hlt
`, 'vtd-driver.yaml');

const ALICE = 1;
const BOB = 2;
const ERIN = 3;
/** Devices on a bus of their own (03:01.0, 03:02.0), and one on a bus with no context table. */
const DEV = 0x0308;
const DEV2 = 0x0310;
const LONE = 0x0408;


/** A booted machine whose events are all kept (emit is wrapped after the boot step). */
function boot(profile: 'secure' | 'vanilla' = 'secure'): Rig {
  const { m, events } = bootRig(scenario(profile));
  if (profile === 'secure') vtdBoot(m);
  return { m, events };
}


function mfnOf(m: Machine, dom: number, gfn: number): number {
  const mfn = m.state.domains.get(dom)!.p2m.get(gfn);
  assert.ok(mfn !== undefined, `gfn ${gfn} of domain ${dom} is mapped`);
  return mfn;
}

/** The guest's plaintext written as the guest would store it (under its own key). */
function plant(m: Machine, dom: number, gpa: number, text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) {
    const address = gpa + at;
    const n = Math.min(bytes.length - at, PAGE_SIZE - (address % PAGE_SIZE));
    writeFrameWithKey(m, dom, dom, address, mfnOf(m, dom, Math.floor(address / PAGE_SIZE)), address % PAGE_SIZE, bytes.subarray(at, at + n));
    at += n;
  }
  return bytes;
}

function stale(m: Machine): string[] {
  return vtdStaleEntries(m.state.io.vtd, hostPhysicalMemory(m.state)).map((s) => `${s.cache} ${s.key}: ${s.detail}`);
}

test('boot latches the tables and turns on DMA and interrupt remapping, never CFI', () => {
  const { m, events } = boot();
  const gsts = m.state.io.vtd.regs.gsts;
  for (const [bit, name] of [[VTD_GSTS_TES, 'TES'], [VTD_GSTS_IRES, 'IRES'], [VTD_GSTS_QIES, 'QIES'], [VTD_GSTS_RTPS, 'RTPS'], [VTD_GSTS_IRTPS, 'IRTPS']] as const) {
    assert.ok((gsts & bit) !== 0, `GSTS.${name} is set`);
  }
  assert.equal(gsts & VTD_GSTS_CFIS, 0);
  const xen = m.state.io.xenVtd;
  assert.equal(xen.enabled, true);
  assert.equal(m.state.io.vtd.regs.rootTable, xen.rootTable);
  assert.equal(m.state.io.vtd.regs.irtaActive & ~0xfff, xen.irt);
  assert.ok(xen.rootTable >= 64 * PAGE_SIZE && xen.iq < 256 * PAGE_SIZE, 'the tables are in Xen frames');
  assert.equal(since(events, 0, 'vtd.op').filter((e) => e.op === 'boot').length, 1, 'one boot op, however often vtdBoot is called');
  vtdBoot(m);
  assert.equal(since(events, 0, 'vtd.op').filter((e) => e.op === 'boot').length, 1);
});

test('an assigned device reads its guest\'s plaintext, one dma.request per page', () => {
  const { m, events } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  const xen = m.state.io.xenVtd;
  assert.equal(xen.devices.get(DEV), ALICE);
  assert.equal(xen.domains.get(ALICE)!.did, ALICE + 1);
  const secret = plant(m, ALICE, 0x2ff0, 'alice: card 4929-1234-5678-9012');
  const stored = m.state.memory.get(mfnOf(m, ALICE, 2))!.bytes.slice(0xff0);
  assert.notDeepEqual(stored, secret.subarray(0, 16), 'memory holds ciphertext');
  const from = events.length;
  const read = dmaRead(m, DEV, 0x2ff0, secret.length);
  assert.deepEqual(read, secret);
  const requests = since(events, from, 'dma.request');
  assert.equal(requests.length, 2);
  assert.deepEqual(requests.map((r) => [r.iova, r.len, r.fault, r.dom]), [[0x2ff0, 16, 0, ALICE], [0x3000, secret.length - 16, 0, ALICE]]);
  assert.equal(requests[0].hpa, mfnOf(m, ALICE, 2) * PAGE_SIZE + 0xff0);
  // A DMA write lands encrypted under alice's key, and reads back as plaintext.
  const data = new TextEncoder().encode('from the wire');
  assert.equal(dmaWrite(m, DEV, 0x5000, data), true);
  assert.deepEqual(dmaRead(m, DEV, 0x5000, data.length), data);
  assert.notDeepEqual(m.state.memory.get(mfnOf(m, ALICE, 5))!.bytes.slice(0, data.length), data);
  assert.deepEqual(stale(m), []);
});

test('DMA the tables do not allow faults with the spec\'s reason and is recorded in an FRCD', () => {
  const cases: [string, (m: Machine) => boolean, number, number][] = [
    ['read of another domain\'s frame', (m) => dmaRead(m, DEV, mfnOf(m, BOB, 0) * PAGE_SIZE, 8) !== undefined, 0x6, DEV],
    ['write beyond the p2m', (m) => dmaWrite(m, DEV, 0x40000, new Uint8Array(4)), 0x5, DEV],
    ['unassigned device on a bus with a context table', (m) => dmaRead(m, DEV2, 0x2000, 8) !== undefined, 0x2, DEV2],
    ['device on a bus with no root entry', (m) => dmaRead(m, LONE, 0x2000, 8) !== undefined, 0x1, LONE],
  ];
  for (const [name, access, reason, sid] of cases) {
    const { m, events } = boot();
    vtdAssignDevice(m, DEV, ALICE);
    const from = events.length;
    assert.equal(access(m), false, name);
    const [request] = since(events, from, 'dma.request');
    assert.equal(request.fault, reason, name);
    assert.equal(request.hpa, -1, name);
    const record = m.state.io.vtd.frcd.find((r) => r.f);
    assert.ok(record !== undefined, `${name}: an FRCD holds the fault`);
    assert.equal(record.fr, reason, name);
    assert.equal(record.sid, sid, name);
    assert.equal(record.t, !request.write, name);
  }
});

test('the fault handler clears the records so later faults are recorded again', () => {
  const { m } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  const frcds = m.state.io.vtd.frcd.length;
  for (let i = 0; i <= frcds; i++) assert.equal(dmaRead(m, DEV, 0x40000 + i * PAGE_SIZE, 4), undefined);
  assert.ok(m.state.io.vtd.frcd.every((r) => r.f), 'every FRCD is full');
  assert.ok((m.state.io.vtd.regs.fsts & 1) !== 0, 'the extra fault overflowed (PFO)');
  vtdServiceFaults(m);
  assert.ok(m.state.io.vtd.frcd.every((r) => !r.f));
  assert.equal(m.state.io.vtd.regs.fsts & 1, 0);
  assert.equal(dmaWrite(m, DEV, 0x40000, new Uint8Array(4)), false);
  assert.ok(m.state.io.vtd.frcd.some((r) => r.f && r.fr === 0x5), 'recorded again');
});

test('unmap clears the leaf and invalidates the IOTLB before the frame can go', () => {
  const { m, events } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  plant(m, ALICE, 0x2000, 'cached');
  assert.ok(dmaRead(m, DEV, 0x2000, 6));
  assert.ok([...m.state.io.vtd.iotlb.values()].some((e) => e.gfn === 2), 'the DMA filled the IOTLB');

  // The property checked here: without the invalidation, the cached entry would be stale.
  const probe = boot();
  vtdAssignDevice(probe.m, DEV, ALICE);
  assert.ok(dmaRead(probe.m, DEV, 0x2000, 6));
  const slptptr = probe.m.state.io.xenVtd.domains.get(ALICE)!.slptptr;
  const leaf = [...probe.m.state.io.vtd.iotlb.values()].find((e) => e.gfn === 2)!;
  const pt = walkToLeafTable(probe.m, slptptr, 0x2000);
  writeXenWords(probe.m.state, [pt + 2 * 8, 0, 0]);
  assert.ok(leaf && stale(probe.m).length > 0, 'a cleared leaf alone leaves a stale IOTLB entry');

  const from = events.length;
  vtdUnmapPage(m, ALICE, 2);
  const [op] = since(events, from, 'vtd.op');
  assert.equal(op.op, 'unmap');
  assert.deepEqual(stale(m), []);
  assert.ok(![...m.state.io.vtd.iotlb.values()].some((e) => e.gfn === 2));
  const after = events.length;
  assert.equal(dmaRead(m, DEV, 0x2000, 6), undefined);
  assert.equal(since(events, after, 'dma.request')[0].fault, 0x6);
  // Mapping it again (to another frame, say) brings DMA back.
  vtdMapPage(m, ALICE, 2, mfnOf(m, ALICE, 2));
  assert.ok(dmaRead(m, DEV, 0x2000, 6));
});

/** The address of the level-1 table on the way to `iova` (4-level walk from slptptr). */
function walkToLeafTable(m: Machine, slptptr: number, iova: number): number {
  const memory = hostPhysicalMemory(m.state);
  let table = slptptr;
  for (let level = 4; level > 1; level--) {
    const index = Math.floor(iova / 2 ** (12 + 9 * (level - 1))) % 512;
    table = Number(memory.read64(table + index * 8)! & 0xffff_ffff_f000n);
  }
  return table;
}

test('deassign follows the teardown order: clear, context cache, IOTLB DSI, wait', () => {
  const { m, events } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  assert.ok(dmaRead(m, DEV, 0x1000, 4));
  const from = events.length;
  vtdDeassignDevice(m, DEV);
  assert.deepEqual(since(events, from, 'vtd.op').map((e) => e.op), ['context.clear', 'cc.invalidate', 'iotlb.invalidate', 'wait']);
  assert.equal(m.state.io.xenVtd.devices.has(DEV), false);
  assert.equal(m.state.io.vtd.contextCache.has(DEV), false);
  assert.equal([...m.state.io.vtd.iotlb.values()].filter((e) => e.did === ALICE + 1).length, 0);
  assert.deepEqual(stale(m), []);
  assert.ok(m.state.io.xenVtd.domains.has(ALICE), 'the IOMMU domain stays until the domain dies');
  const after = events.length;
  assert.equal(dmaRead(m, DEV, 0x1000, 4), undefined);
  assert.equal(since(events, after, 'dma.request')[0].fault, 0x2);
});

test('destroying a domain deassigns its devices and gives its table frames back', () => {
  const { m, events } = boot();
  const poolBefore = m.state.io.xenVtd.freeFrames.length;
  vtdAssignDevice(m, DEV, ALICE);
  vtdAssignDevice(m, DEV2, ALICE);
  msiProgram(m, DEV, 0x41, ALICE, 0);
  const frames = m.state.io.xenVtd.domains.get(ALICE)!.frames;
  const from = events.length;
  vtdDestroyDomain(m, ALICE);
  const ops = since(events, from, 'vtd.op').map((e) => e.op);
  assert.deepEqual(ops.slice(-2), ['iotlb.invalidate', 'domain.free']);
  assert.equal(ops.filter((op) => op === 'context.clear').length, 2);
  assert.ok(ops.includes('irte.clear'));
  const xen = m.state.io.xenVtd;
  assert.equal(xen.domains.has(ALICE), false);
  assert.equal(xen.devices.size, 0);
  assert.equal(xen.irtes.size, 0);
  // Only the context table for bus 3 is still taken.
  assert.equal(xen.freeFrames.length, poolBefore - 1);
  for (const mfn of frames) assert.equal(m.state.memory.has(mfn), false, `table frame ${mfn} was cleared`);
  assert.deepEqual(stale(m), []);
});

test('a remapped MSI reaches the vCPU the IRTE names', () => {
  const { m, events } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  vtdAssignDevice(m, DEV2, ERIN);
  const msi = msiProgram(m, DEV, 0x41, ALICE, 0);
  assert.equal(msi.address & 0x10, 0x10, 'remappable format');
  assert.deepEqual(m.state.io.xenVtd.irtes.get(0), { sid: DEV, dom: ALICE, vcpu: 0, vector: 0x41 });
  let from = events.length;
  interruptRequest(m, DEV, msi.address, msi.data);
  assert.deepEqual(since(events, from, 'msi').map((e) => [e.fault, e.dom, e.vcpu, e.vector, e.index]), [[0, ALICE, 0, 0x41, 0]]);

  // erin is an x86 guest: the vector lands in her vCPU's IRR; the device sends it as a DMA write.
  const erinMsi = msiProgram(m, DEV2, 0x52, ERIN, 0);
  assert.equal(m.state.io.xenVtd.irtes.get(1)?.dom, ERIN);
  from = events.length;
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, erinMsi.data, true);
  assert.equal(dmaWrite(m, DEV2, erinMsi.address, data), true);
  assert.equal(since(events, from, 'msi')[0].fault, 0);
  assert.equal(since(events, from, 'dma.request').length, 0, 'an interrupt request is not memory');
  assert.ok(m.state.domains.get(ERIN)!.vcpus[0].x86!.irr.includes(0x52));
  assert.deepEqual(stale(m), []);
});

test('interrupt remapping blocks compatibility-format MSIs (0x25) and foreign source ids (0x26)', () => {
  const { m, events } = boot();
  vtdAssignDevice(m, DEV, ALICE);
  const msi = msiProgram(m, DEV, 0x41, ALICE, 0);
  const compat = vtdCompatibilityMsi({ destination: 0, vector: 0x41 });
  for (const [sid, request, reason] of [[DEV, compat, 0x25], [DEV2, msi, 0x26]] as const) {
    const from = events.length;
    interruptRequest(m, sid, request.address, request.data);
    const [event] = since(events, from, 'msi');
    assert.deepEqual([event.fault, event.dom, event.vcpu, event.vector], [reason, -1, -1, -1]);
    assert.ok(m.state.io.vtd.frcd.some((r) => r.f && r.fr === reason && r.sid === sid), `FRCD records 0x${reason.toString(16)}`);
  }
});

test('vanilla: DMA is untranslated and a compatibility MSI goes where it points', () => {
  const { m, events } = boot('vanilla');
  assert.equal(m.state.io.xenVtd.enabled, false);
  const secret = plant(m, BOB, 0x1000, 'bob: ssh key');
  const hpa = mfnOf(m, BOB, 1) * PAGE_SIZE;
  const from = events.length;
  // Any device reads any frame: the leak the paper says vanilla has.
  assert.deepEqual(dmaRead(m, DEV, hpa, secret.length), secret);
  const [request] = since(events, from, 'dma.request');
  // The request is the (unassigned) device's, and it reached bob's frame: dma-confined says so.
  assert.deepEqual([request.hpa, request.fault, request.dom], [hpa, 0, -1]);
  assert.match(dmaConfined.check(m.state, request)?.detail ?? '', /assigned to nobody\) read 12 bytes of bob's frame/);
  assert.equal(dmaWrite(m, DEV, hpa, new TextEncoder().encode('pwned')), true);
  assert.deepEqual(dmaRead(m, DEV, hpa, 5), new TextEncoder().encode('pwned'));
  const msi = msiProgram(m, DEV, 0x41, ALICE, 0);
  assert.deepEqual(msi, { address: 0xfee00000, data: 0x41 });
  assert.equal(since(events, from, 'vtd.op').length, 0, 'nothing is programmed in an IOMMU');
  const at = events.length;
  interruptRequest(m, DEV, msi.address, msi.data);
  const [event] = since(events, at, 'msi');
  assert.deepEqual([event.fault, event.index, event.vector], [0, -1, 0x41]);
  // Nothing ties it to a domain: it reaches whoever runs on the physical CPU it names.
  const running = m.state.sched.pcpus[0];
  assert.deepEqual([event.dom, event.vcpu], [running.dom, running.dom < 0 ? -1 : running.vcpu]);
});

type Action =
  | { kind: 'assign'; dev: number; dom: number }
  | { kind: 'deassign'; dev: number }
  | { kind: 'read' | 'write'; dev: number; iova: number; len: number }
  | { kind: 'unmap' | 'map'; dom: number; gfn: number }
  | { kind: 'msi'; dev: number; dom: number; vector: number; from: number | null; compat: boolean }
  | { kind: 'destroy'; dom: number }
  | { kind: 'service' };

const devs = fc.constantFrom(DEV, DEV2, LONE);
const doms = fc.constantFrom(ALICE, BOB, ERIN);
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('assign' as const), dev: devs, dom: doms }),
  fc.record({ kind: fc.constant('deassign' as const), dev: devs }),
  fc.record({ kind: fc.constantFrom('read' as const, 'write' as const), dev: devs, iova: fc.integer({ min: 0, max: 0x12000 }), len: fc.integer({ min: 1, max: 6000 }) }),
  fc.record({ kind: fc.constantFrom('unmap' as const, 'map' as const), dom: doms, gfn: fc.integer({ min: 0, max: 17 }) }),
  fc.record({ kind: fc.constant('msi' as const), dev: devs, dom: doms, vector: fc.integer({ min: 0x20, max: 0xff }), from: fc.option(devs), compat: fc.boolean() }),
  fc.record({ kind: fc.constant('destroy' as const), dom: doms }),
  fc.record({ kind: fc.constant('service' as const) }),
);

const START: Action[] = [{ kind: 'assign', dev: DEV, dom: ALICE }, { kind: 'assign', dev: DEV2, dom: ERIN }];

function perform(m: Machine, a: Action): void {
  switch (a.kind) {
    case 'assign': return vtdAssignDevice(m, a.dev, a.dom);
    case 'deassign': return vtdDeassignDevice(m, a.dev);
    case 'read': void dmaRead(m, a.dev, a.iova, a.len); return;
    case 'write': void dmaWrite(m, a.dev, a.iova, new Uint8Array(a.len).fill(a.len & 0xff)); return;
    case 'unmap': return vtdUnmapPage(m, a.dom, a.gfn);
    case 'map': {
      const mfn = m.state.domains.get(a.dom)!.p2m.get(a.gfn);
      if (mfn !== undefined) vtdMapPage(m, a.dom, a.gfn, mfn);
      return;
    }
    case 'msi': {
      const msi = a.compat ? vtdCompatibilityMsi({ destination: 0, vector: a.vector }) : msiProgram(m, a.dev, a.vector, a.dom, 0);
      return interruptRequest(m, a.from ?? a.dev, msi.address, msi.data);
    }
    case 'destroy': return vtdDestroyDomain(m, a.dom);
    case 'service': return vtdServiceFaults(m);
  }
}

test('folding the recorded events gives the live machine\'s I/O state and memory', () => {
  fc.assert(fc.property(fc.constantFrom('secure' as const, 'vanilla' as const), fc.array(action, { maxLength: 25 }), (profile, actions) => {
    const { m, events } = boot(profile);
    // Devices start assigned, so most DMA and MSIs get through and the tables and caches fill.
    for (const a of [...START, ...actions]) perform(m, a);
    if (profile === 'secure') assert.deepEqual(stale(m), [], 'no cached translation outlives its mapping');
    const replayed = initialState(m.state.config);
    for (const event of events) evolve(replayed, event);
    assert.equal(stateDigest(replayed).toString('hex'), stateDigest(m.state).toString('hex'));
  }), { numRuns: 60 });
});
