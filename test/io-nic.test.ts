/**
 * The NIC's virtual functions, the switch and the two I/O paths. The switch's decisions are
 * unit-tested and fuzzed on their own (VLAN isolation, anti-spoofing, default-deny security
 * groups); the device is driven through its registers as a guest driver would, with rings
 * and buffers in guest memory, in a real machine of each profile: SIOM's DMA and tagged
 * buffers in secure, dom0's grant copies and their dependence on the backend in vanilla.
 */
import { bootRig, since, type Rig } from './helpers/rig.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Event } from '../src/events/schema.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { writeFrameWithKey } from '../src/core/hypervisor/memory/guest-memory.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { PAGE_SIZE } from '../src/core/hypervisor/config.ts';
import type { SecurityRule } from '../src/core/hardware/nic/switch.ts';
import { ownerPlaintext } from '../src/core/hypervisor/memory/smm.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { initialState } from '../src/core/machine/state.ts';
import { buildFrame, parseFrame, tagFrame, type FrameSpec } from '../src/core/hardware/nic/ethernet.ts';
import type { NicVf } from '../src/core/hardware/nic/vf.ts';
import {
  DCTL_ENABLE, EICR_RX, EICR_TX, RXD_STA_DD, RXD_STA_EOP, TXD_CMD_EOP, TXD_CMD_RS, TXD_STA_DD, VFCTRL, VFCTRL_RST, VFEICR,
  VFEIMC, VFEIMS, VFMACL, VFRDBAL, VFRDH, VFRDLEN, VFRDT, VFRXDCTL, VFSTATUS, VFSTATUS_LU, VFTDBAL, VFTDH, VFTDLEN, VFTDT,
  VFTXDCTL,
} from '../src/core/hardware/nic/registers.ts';
import { isGroupMac, securityGroupAllows, switchDecide, type SwitchConfig } from '../src/core/hardware/nic/switch.ts';
import { vtdBoot } from '../src/core/hypervisor/vtd-driver/iommu-domains.ts';
import { nicAttach, nicBoot, nicDetach, nicVfOf } from '../src/core/hypervisor/io/nic-pf-driver.ts';
import { nicPort } from '../src/core/hypervisor/io/io-path.ts';
import { nicMmioRead, nicMmioWrite } from '../src/core/hypervisor/io/vf-mmio.ts';
import { nicServiceQueues } from '../src/core/hardware/nic/device.ts';
import { wireReceive } from '../src/core/machine/wire.ts';

// ---- the switch, pure ----------------------------------------------------------------------

const MAC = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03', '02:00:00:00:00:04'];
const NAMES = ['alice', 'bob', 'carol', 'dave'];

function port(n: number, vlan: number, spoofcheck = true): NicVf {
  return { vf: n, bdf: 0x280 + 2 * (n - 1), dom: n, mac: MAC[n - 1], vlan, spoofcheck, regs: {} };
}

function config(rules: SecurityRule[] = [], antiSpoof = true): SwitchConfig {
  return { securityGroups: rules, domainName: (dom) => NAMES[dom - 1], antiSpoof };
}

function udp(src: number, dst: string, dstPort = 9, options: Partial<FrameSpec> = {}): Uint8Array {
  return buildFrame({
    dst, src: MAC[src - 1], udp: { src: `10.0.0.${src}`, dst: '10.0.0.99', srcPort: 4000, dstPort },
    payload: new TextEncoder().encode('hello'), ...options,
  });
}

function rule(domain: string, direction: 'ingress' | 'egress', fields: Partial<SecurityRule> = {}): SecurityRule {
  return { domain, direction, protocol: 'any', remote: '0.0.0.0/0', port: 0, action: 'allow', ...fields };
}

const VFS = [port(1, 0), port(2, 0), port(3, 7), port(4, 7)];

test('a unicast reaches its VF on the same VLAN, untagged inside and tagged on a VLAN', () => {
  const d = switchDecide(VFS, config(), udp(1, MAC[1]), { vf: 1 });
  assert.equal(d.verdict, 'ok');
  assert.deepEqual(d.out, [{ to: 2, verdict: 'ok' }]);
  const tagged = switchDecide(VFS, config(), udp(3, MAC[3]), { vf: 3 });
  assert.deepEqual(tagged.out, [{ to: 4, verdict: 'ok' }]);
  assert.equal(parseFrame(tagged.frame)!.vlan, 7, 'inside the switch the frame carries its port VLAN');
  assert.equal(parseFrame(tagged.inner)!.vlan, 0, 'a VF receives it untagged');
});

test('broadcast floods the VLAN and the wire; unknown unicast goes to the wire', () => {
  const b = switchDecide(VFS, config(), udp(1, 'ff:ff:ff:ff:ff:ff'), { vf: 1 });
  assert.deepEqual(b.out.map((o) => o.to), [2, 'wire']);
  const u = switchDecide(VFS, config(), udp(1, '02:aa:00:00:00:09'), { vf: 1 });
  assert.deepEqual(u.out.map((o) => o.to), ['wire']);
  // carol's MAC is on VLAN 7: from VLAN 0 it is an unknown destination, so it leaves on the trunk.
  const cross = switchDecide(VFS, config(), udp(1, MAC[2]), { vf: 1 });
  assert.deepEqual(cross.out.map((o) => o.to), ['wire']);
  assert.ok(isGroupMac('01:00:5e:00:00:01') && !isGroupMac(MAC[0]));
});

test('the wire reaches VFs by its 802.1Q tag; untagged is VLAN 0', () => {
  const toCarol = tagFrame(udp(1, MAC[2]), 7);
  assert.deepEqual(switchDecide(VFS, config(), toCarol, 'wire').out, [{ to: 3, verdict: 'ok' }]);
  const wrongVlan = switchDecide(VFS, config(), udp(1, MAC[2]), 'wire');
  assert.equal(wrongVlan.verdict, 'vlan');
  assert.deepEqual(wrongVlan.out, []);
  assert.equal(switchDecide(VFS, config(), udp(1, '02:aa:00:00:00:09'), 'wire').verdict, 'unknown-destination');
  const flood = switchDecide(VFS, config(), tagFrame(udp(1, 'ff:ff:ff:ff:ff:ff'), 7), 'wire');
  assert.deepEqual(flood.out.map((o) => o.to), [3, 4], 'a broadcast from the wire does not go back to it');
});

test('anti-spoofing drops a forged source MAC; a bridge without it and a VF with it off pass it', () => {
  const forged = udp(1, MAC[1], 9, { src: MAC[3] });
  assert.equal(switchDecide(VFS, config(), forged, { vf: 1 }).verdict, 'spoof');
  assert.equal(switchDecide(VFS, config([], false), forged, { vf: 1 }).verdict, 'ok');
  assert.equal(switchDecide([port(1, 0, false), port(2, 0)], config(), forged, { vf: 1 }).verdict, 'ok');
  const onVlan = switchDecide(VFS, config(), udp(3, MAC[3], 9, { src: MAC[0] }), { vf: 3 });
  assert.equal(onVlan.verdict, 'spoof');
  assert.equal(parseFrame(onVlan.frame)!.vlan, 7, 'a dropped frame is still shown as it was on the switch');
});

test('a guest-chosen VLAN tag is dropped; a runt is dropped', () => {
  assert.equal(switchDecide(VFS, config(), tagFrame(udp(1, MAC[3]), 7), { vf: 1 }).verdict, 'vlan');
  assert.equal(switchDecide(VFS, config(), new Uint8Array(10), { vf: 1 }).verdict, 'runt');
});

test('security groups: egress and ingress, first match decides, default deny once rules exist', () => {
  const frame = udp(1, MAC[1], 53);
  const header = parseFrame(frame)!;
  assert.ok(securityGroupAllows([], 'bob', 'ingress', header), 'no rules: everything passes');
  const allowDns = [rule('bob', 'ingress', { protocol: 'udp', port: 53, remote: '10.0.0.0/24' })];
  assert.ok(securityGroupAllows(allowDns, 'bob', 'ingress', header));
  assert.ok(!securityGroupAllows(allowDns, 'bob', 'ingress', parseFrame(udp(1, MAC[1], 54))!), 'no match: deny');
  assert.ok(!securityGroupAllows([rule('bob', 'ingress', { remote: '10.1.0.0/16' })], 'bob', 'ingress', header));
  const first = [rule('bob', 'ingress', { action: 'deny', protocol: 'udp' }), rule('bob', 'ingress')];
  assert.ok(!securityGroupAllows(first, 'bob', 'ingress', header), 'the first matching rule decides');
  assert.ok(securityGroupAllows(allowDns, 'bob', 'egress', header), 'rules of one direction leave the other open');
  const raw = parseFrame(buildFrame({ dst: MAC[1], src: MAC[0], payload: new Uint8Array(20) }))!;
  assert.ok(!securityGroupAllows(allowDns, 'bob', 'ingress', raw), 'a non-IP frame matches no udp rule');
  assert.ok(securityGroupAllows([rule('bob', 'ingress')], 'bob', 'ingress', raw), 'but does match any/any');
  const d = switchDecide(VFS, config(allowDns), udp(1, MAC[1], 9), { vf: 1 });
  assert.deepEqual(d.out, [{ to: 2, verdict: 'security-group' }]);
  const egress = switchDecide(VFS, config([rule('alice', 'egress', { remote: '10.9.0.0/16' })]), frame, { vf: 1 });
  assert.equal(egress.verdict, 'security-group');
  assert.deepEqual(egress.out, []);
});

const arbitraryPorts = fc.uniqueArray(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }).chain((numbers) =>
  fc.tuple(...numbers.map((n) => fc.record({ vlan: fc.constantFrom(0, 5, 7), spoofcheck: fc.boolean() }).map((p) => port(n, p.vlan, p.spoofcheck)))));
const arbitraryMac = fc.constantFrom(...MAC, 'ff:ff:ff:ff:ff:ff', '02:aa:00:00:00:09', '33:33:00:00:00:01');

test('property: no frame reaches a VF of another VLAN; forged sources die under spoofcheck', () => {
  fc.assert(fc.property(arbitraryPorts, arbitraryMac, arbitraryMac, fc.constantFrom(0, 5, 7), fc.nat(4), fc.boolean(),
    (ports, dst, src, tag, sender, antiSpoof) => {
      const raw = buildFrame({ dst, src, payload: new Uint8Array(30) });
      const frame = tag > 0 ? tagFrame(raw, tag) : raw;
      const from = sender < ports.length ? { vf: ports[sender].vf } : 'wire' as const;
      const d = switchDecide(ports, config([], antiSpoof), frame, from);
      const source = from === 'wire' ? undefined : ports[sender];
      const vlan = source?.vlan ?? tag;
      for (const out of d.out) {
        if (out.to === 'wire' || out.verdict !== 'ok') continue;
        assert.equal(ports.find((p) => p.vf === out.to)!.vlan, vlan, `VF ${out.to} got a frame of VLAN ${vlan}`);
        assert.notEqual(out.to, source?.vf, 'never back to the sender');
      }
      if (source !== undefined && antiSpoof && source.spoofcheck && src !== source.mac) {
        assert.equal(d.verdict, 'spoof');
        assert.equal(d.out.length, 0);
      }
    }), { numRuns: 500 });
});

test('property: with rules for a direction, a frame no rule matches is denied', () => {
  const arbitraryRule = fc.record({
    protocol: fc.constantFrom('udp', 'tcp', 'any') as fc.Arbitrary<SecurityRule['protocol']>,
    remote: fc.constantFrom('10.0.0.0/24', '10.0.0.1/32', '192.168.0.0/16', '0.0.0.0/0'),
    port: fc.constantFrom(0, 53, 80, 9),
    action: fc.constantFrom('allow', 'deny') as fc.Arbitrary<SecurityRule['action']>,
  }).map((r) => rule('bob', 'ingress', r));
  fc.assert(fc.property(fc.array(arbitraryRule, { minLength: 1, maxLength: 5 }), fc.constantFrom(9, 53, 80, 443), fc.integer({ min: 1, max: 4 }),
    (rules, dstPort, src) => {
      const frame = udp(src, MAC[1], dstPort);
      const header = parseFrame(frame)!;
      const allowed = securityGroupAllows(rules, 'bob', 'ingress', header);
      const matching = rules.filter((r) => (r.protocol !== 'tcp') && (r.port === 0 || r.port === dstPort)
        && (r.remote === '0.0.0.0/0' || r.remote === '10.0.0.0/24' || (r.remote === '10.0.0.1/32' && src === 1)));
      assert.equal(allowed, matching.length > 0 && matching[0].action === 'allow');
      const d = switchDecide(VFS, config(rules), frame, src === 2 ? 'wire' : { vf: src });
      for (const out of d.out) if (out.to === 2) assert.equal(out.verdict, allowed ? 'ok' : 'security-group');
    }), { numRuns: 300 });
});

// ---- the device in a machine ---------------------------------------------------------------

const scenarioText = (profile: 'secure' | 'vanilla', rules = '[]'): string => `seed: 11
machine: { memoryMiB: 4, pcpus: 1, profile: ${profile} }
dom0: { memoryKiB: 256 }
network:
  vfs: 4
  securityGroups: ${rules}
  wire:
    - { at: 1000000, frame: { dst: "${MAC[1]}", src: "02:ee:00:00:00:01", udp: { src: 10.9.9.9, dst: 10.0.0.2, srcPort: 7, dstPort: 9 }, text: "from the wire" } }
    - { at: 1000000, frame: { dst: "${MAC[2]}", src: "02:ee:00:00:00:01", vlan: 7, text: "to carol on VLAN 7" } }
    - { at: 1000000, frame: { dst: "${MAC[1]}", src: "02:ee:00:00:00:01", vlan: 7, text: "to bob on the wrong VLAN" } }
domains:
  - name: alice
    memoryKiB: 64
    nic: { mac: "${MAC[0]}", ip: 10.0.0.1 }
    guest: { ops: [yield] }
  - name: bob
    memoryKiB: 64
    nic: { mac: "${MAC[1]}", ip: 10.0.0.2 }
    guest: { ops: [yield] }
  - name: carol
    memoryKiB: 64
    nic: { mac: "${MAC[2]}", ip: 10.0.0.3, vlan: 7 }
    guest: { ops: [yield] }
`;

const ALICE = 1;
const BOB = 2;
const CAROL = 3;
/** Guest layout: tx ring, tx buffers, rx ring, rx buffers (2 KiB each). */
const TX_RING = 0x1000;
const TX_BUFFERS = 0x2000;
const RX_RING = 0x5000;
const RX_BUFFERS = 0x6000;
const RING_DESCRIPTORS = 8;
const VECTOR = 0x41;


/** A booted machine with every event kept; the NIC set up (idempotent if boot did it). */
function boot(profile: 'secure' | 'vanilla', rules?: string): Rig {
  const { m, events } = bootRig(parseScenario(scenarioText(profile, rules), 'nic.yaml'));
  if (profile === 'secure') vtdBoot(m);
  nicBoot(m);
  for (const dom of [ALICE, BOB, CAROL]) nicAttach(m, dom);
  return { m, events };
}


/** Writes into a guest's memory as the guest would (under its key in secure). */
function poke(m: Machine, dom: number, gpa: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const offset = (gpa + at) % PAGE_SIZE;
    const n = Math.min(bytes.length - at, PAGE_SIZE - offset);
    const mfn = m.state.domains.get(dom)!.p2m.get(Math.floor((gpa + at) / PAGE_SIZE))!;
    writeFrameWithKey(m, dom, dom, gpa + at, mfn, offset, bytes.subarray(at, at + n));
    at += n;
  }
}

/** A guest's memory as the guest reads it. */
function peek(m: Machine, dom: number, gpa: number, len: number): Uint8Array {
  const mfn = m.state.domains.get(dom)!.p2m.get(Math.floor(gpa / PAGE_SIZE))!;
  return ownerPlaintext(m.state, mfn, gpa % PAGE_SIZE, len);
}

function descriptor(address: number, length = 0, cmd = 0): Uint8Array {
  const d = new Uint8Array(16);
  const view = new DataView(d.buffer);
  view.setUint32(0, address, true);
  view.setUint16(8, length, true);
  d[11] = cmd;
  return d;
}

const w = (m: Machine, dom: number, offset: number, value: number, bar = 0): void => nicMmioWrite(m, dom, bar, offset, 4, value);
const r = (m: Machine, dom: number, offset: number, bar = 0): number => nicMmioRead(m, dom, bar, offset, 4);

/** What ixgbevf's open does: rings, receive buffers, queues on, interrupts unmasked, MSI-X entry 0. */
function driverUp(m: Machine, dom: number, rxDescriptors = RING_DESCRIPTORS - 1): void {
  w(m, dom, VFTDBAL, TX_RING);
  w(m, dom, VFTDLEN, RING_DESCRIPTORS * 16);
  w(m, dom, VFTXDCTL, DCTL_ENABLE);
  for (let i = 0; i < RING_DESCRIPTORS; i++) poke(m, dom, RX_RING + 16 * i, descriptor(RX_BUFFERS + 0x800 * i));
  w(m, dom, VFRDBAL, RX_RING);
  w(m, dom, VFRDLEN, RING_DESCRIPTORS * 16);
  w(m, dom, VFRXDCTL, DCTL_ENABLE);
  w(m, dom, VFRDT, rxDescriptors);
  w(m, dom, 0x0, 0xfee0_0000, 3);
  w(m, dom, 0x8, VECTOR, 3);
  w(m, dom, 0xc, 0, 3);
  w(m, dom, VFEIMS, EICR_RX | EICR_TX);
}

/** The guest queues one frame at TDT and rings the doorbell. */
function send(m: Machine, dom: number, frame: Uint8Array, buffer = TX_BUFFERS): void {
  const tail = r(m, dom, VFTDT);
  poke(m, dom, buffer, frame);
  poke(m, dom, TX_RING + 16 * tail, descriptor(buffer, frame.length, TXD_CMD_EOP | TXD_CMD_RS));
  w(m, dom, VFTDT, (tail + 1) % RING_DESCRIPTORS);
}

function frameAts(events: readonly Event[], from: number): string[] {
  return since(events, from, 'net.frame').map((f) => `${f.at}:${f.verdict}`);
}

function replayMatches(rig: Rig): void {
  const replayed = initialState(rig.m.state.config);
  for (const event of rig.events) evolve(replayed, event);
  assert.equal(stateDigest(replayed).toString('hex'), stateDigest(rig.m.state).toString('hex'), 'the fold of the events gives the live state');
}

test('boot: dom0 enables the VFs, each domain with a nic gets one with its MAC, VLAN and reset registers', () => {
  const { m, events } = boot('secure');
  const cfg = since(events, 0, 'pci.cfg');
  assert.ok(cfg.length > 0 && cfg.every((e) => e.dom === 0 && e.write));
  const vfs = m.state.io.vfs;
  assert.deepEqual(vfs.map((v) => [v.vf, v.dom, v.mac, v.vlan]), [[1, ALICE, MAC[0], 0], [2, BOB, MAC[1], 0], [3, CAROL, MAC[2], 7]]);
  assert.equal(vfs[0].bdf, 0x280, 'VF 1 of the PF at 02:00.0 is 02:10.0');
  assert.equal(m.state.io.xenVtd.devices.get(vfs[1].bdf), BOB, 'Xen put the VF in bob\'s IOMMU domain');
  assert.equal(r(m, ALICE, VFSTATUS) & VFSTATUS_LU, VFSTATUS_LU);
  assert.equal(r(m, ALICE, VFMACL), 0x0000_0002, 'MAC bytes 0..3, little-endian');
  assert.equal(r(m, 0, VFSTATUS), 0xffff_ffff, 'a domain without a VF reads all ones');
  assert.equal(nicAttach(m, ALICE), 1, 'a second attach is a no-op');
});

test('secure: a frame goes by DMA through SIOM\'s tagged buffers to the other VF, with interrupts', () => {
  const rig = boot('secure');
  const { m, events } = rig;
  driverUp(m, ALICE);
  driverUp(m, BOB);
  const from = events.length;
  const frame = udp(1, MAC[1]);
  send(m, ALICE, frame);
  assert.deepEqual(frameAts(events, from), ['siom.tx:ok', 'vf1.tx:ok', 'switch:ok', 'siom.rx:ok', 'vf2.rx:ok']);
  const buffers = since(events, from, 'siom.buffer').map((b) => `${b.dom}.${b.dir}.${b.op}.${b.tag}`);
  assert.deepEqual(buffers, [`${ALICE}.tx.enqueue.${ALICE}`, `${ALICE}.tx.dequeue.${ALICE}`, `${BOB}.rx.enqueue.${BOB}`, `${BOB}.rx.dequeue.${BOB}`]);
  const dma = since(events, from, 'dma.request');
  assert.ok(dma.every((d) => d.fault === 0));
  assert.ok(dma.some((d) => d.sid === 0x280 && !d.write && Buffer.from(d.data).equals(Buffer.from(frame))), 'alice\'s VF read the frame');
  assert.ok(dma.some((d) => d.sid === 0x282 && d.write && d.iova === RX_BUFFERS), 'bob\'s VF wrote it into his buffer');
  assert.equal(since(events, from, 'netback.copy').length, 0, 'dom0 is not on the path');
  assert.deepEqual(peek(m, BOB, RX_BUFFERS, frame.length), frame);
  const writeBack = peek(m, BOB, RX_RING + 8, 8);
  assert.equal(writeBack[0] | (writeBack[1] << 8), frame.length);
  assert.equal(writeBack[4], RXD_STA_DD | RXD_STA_EOP);
  assert.equal(peek(m, ALICE, TX_RING + 12, 1)[0] & TXD_STA_DD, TXD_STA_DD, 'alice\'s descriptor is done');
  assert.equal(r(m, ALICE, VFTDH), 1);
  assert.equal(r(m, BOB, VFRDH), 1);
  const msis = since(events, from, 'msi');
  assert.deepEqual(msis.map((e) => [e.dom, e.vector, e.fault]), [[BOB, VECTOR, 0], [ALICE, VECTOR, 0]]);
  assert.equal(r(m, BOB, VFEICR), EICR_RX, 'bob reads the cause');
  assert.equal(r(m, BOB, VFEICR), 0, 'EICR is read-to-clear');
  assert.equal(r(m, ALICE, VFEICR), EICR_TX);
  assert.equal(m.state.io.siom.tx.size + m.state.io.siom.rx.size, 0, 'the buffers drain');
  assert.equal(since(events, 0, 'violation').length, 0);
  replayMatches(rig);
});

test('secure: VLANs, anti-spoofing, missing descriptors, security groups', () => {
  const { m, events } = boot('secure', `[{ domain: bob, direction: ingress, protocol: udp, port: 53 }]`);
  for (const dom of [ALICE, BOB, CAROL]) driverUp(m, dom);
  let from = events.length;
  send(m, ALICE, udp(1, 'ff:ff:ff:ff:ff:ff'));
  assert.deepEqual(frameAts(events, from), ['siom.tx:ok', 'vf1.tx:ok', 'switch:ok', 'vf2.rx:security-group', 'wire.out:ok'], 'carol on VLAN 7 never sees it');
  from = events.length;
  send(m, ALICE, udp(1, MAC[1], 53), TX_BUFFERS + 0x800);
  assert.deepEqual(frameAts(events, from), ['siom.tx:ok', 'vf1.tx:ok', 'switch:ok', 'siom.rx:ok', 'vf2.rx:ok']);
  from = events.length;
  send(m, ALICE, udp(1, MAC[1], 53, { src: MAC[3] }));
  assert.deepEqual(frameAts(events, from), ['siom.tx:ok', 'vf1.tx:ok', 'switch:spoof']);
  // bob's ring is full once RDH meets RDT: he gave 7 descriptors and used 1.
  w(m, BOB, VFRDT, r(m, BOB, VFRDH));
  from = events.length;
  send(m, ALICE, udp(1, MAC[1], 53));
  assert.deepEqual(frameAts(events, from).slice(-1), ['vf2.rx:no-rx-descriptor']);
  assert.equal(m.state.io.siom.rx.size, 0);
});

test('secure: a descriptor pointing outside the domain faults in the IOMMU and stalls the queue', () => {
  const { m, events } = boot('secure');
  driverUp(m, ALICE);
  const from = events.length;
  poke(m, ALICE, TX_RING, descriptor(0x20_0000, 60, TXD_CMD_EOP | TXD_CMD_RS));
  w(m, ALICE, VFTDT, 1);
  assert.deepEqual(frameAts(events, from), ['vf1.tx:dma-fault']);
  assert.ok(since(events, from, 'dma.request').some((d) => d.fault !== 0));
  assert.equal(r(m, ALICE, VFTDH), 0, 'the queue stops at the faulting descriptor');
  // Any 64 bits a guest writes are an address the device tries (and the IOMMU refuses).
  poke(m, ALICE, TX_RING, Uint8Array.from([...descriptor(0, 60, TXD_CMD_EOP).subarray(0, 4), 0xff, 0xff, 0xff, 0xff, ...descriptor(0, 60, TXD_CMD_EOP).subarray(8)]));
  const again = events.length;
  w(m, ALICE, VFTDT, 2);
  assert.deepEqual(frameAts(events, again), ['vf1.tx:dma-fault']);
  w(m, ALICE, VFTDLEN, 0xffff_ffff);
  assert.equal(r(m, ALICE, VFTDLEN), 0xf_ffff, 'ring lengths have 20 bits');
});

test('interrupts: EIMS masks causes, a masked MSI-X entry holds its message pending', () => {
  const { m, events } = boot('secure');
  driverUp(m, ALICE);
  driverUp(m, BOB);
  w(m, BOB, VFEIMC, EICR_RX);
  let from = events.length;
  send(m, ALICE, udp(1, MAC[1]));
  assert.deepEqual(since(events, from, 'msi').map((e) => e.dom), [ALICE], 'bob masked rx');
  from = events.length;
  w(m, BOB, VFEIMS, EICR_RX);
  assert.deepEqual(since(events, from, 'msi').map((e) => e.dom), [BOB], 'unmasking a pending cause interrupts');
  r(m, BOB, VFEICR);
  w(m, BOB, 0xc, 1, 3);
  from = events.length;
  send(m, ALICE, udp(1, MAC[1]), TX_BUFFERS + 0x800);
  assert.deepEqual(since(events, from, 'msi').map((e) => e.dom), [ALICE]);
  assert.equal(r(m, BOB, 0x2000, 3), 1, 'the PBA shows the pending vector');
  from = events.length;
  w(m, BOB, 0xc, 0, 3);
  assert.deepEqual(since(events, from, 'msi').map((e) => [e.dom, e.vector]), [[BOB, VECTOR]]);
  assert.equal(r(m, BOB, 0x8, 3), VECTOR, 'the guest reads back its own data, not Xen\'s');
  // The guest writes its compatibility-format address again: the real table keeps Xen's message.
  w(m, BOB, 0x0, 0xfee0_0000, 3);
  w(m, BOB, 0x8, VECTOR, 3);
  r(m, BOB, VFEICR);
  from = events.length;
  send(m, ALICE, udp(1, MAC[1]));
  const remapped = since(events, from, 'msi').find((e) => e.dom === BOB)!;
  assert.ok(remapped.index >= 0 && remapped.fault === 0, 'still a remapped interrupt through its IRTE');
  assert.equal(since(events, 0, 'vtd.op').filter((o) => o.op === 'irte.set' && o.sid === 0x282).length, 1, 'one IRTE for one vector');
  w(m, BOB, VFCTRL, VFCTRL_RST);
  assert.equal(r(m, BOB, VFRDLEN), 0, 'VFCTRL.RST forgets the rings');
  assert.equal(r(m, BOB, VFEIMS), 0);
});

test('wire: frames from outside reach the VF of their VLAN only', () => {
  const { m, events } = boot('secure');
  for (const dom of [ALICE, BOB, CAROL]) driverUp(m, dom);
  let from = events.length;
  wireReceive(m, 0);
  assert.equal(events[from].kind, 'wire.rx');
  assert.deepEqual(frameAts(events, from), ['wire.in:ok', 'switch:ok', 'siom.rx:ok', 'vf2.rx:ok']);
  assert.equal(m.state.io.wireNext, 1);
  assert.deepEqual(peek(m, BOB, RX_BUFFERS, 12), m.state.config.network.wire[0].frame.subarray(0, 12));
  from = events.length;
  wireReceive(m, 1);
  assert.deepEqual(frameAts(events, from), ['wire.in:ok', 'switch:ok', 'siom.rx:ok', 'vf3.rx:ok']);
  const got = peek(m, CAROL, RX_BUFFERS, 14);
  assert.deepEqual([...got.subarray(12, 14)], [0x88, 0xb5], 'carol receives it untagged');
  from = events.length;
  wireReceive(m, 2);
  assert.deepEqual(frameAts(events, from), ['wire.in:ok', 'switch:vlan']);
});

test('detach: the VF is reset, leaves the IOMMU domain and is free for the next domain', () => {
  const rig = boot('secure');
  const { m } = rig;
  driverUp(m, BOB);
  const bdf = nicVfOf(m.state, BOB)!.bdf;
  nicDetach(m, BOB);
  assert.equal(nicVfOf(m.state, BOB), undefined);
  assert.equal(m.state.io.xenVtd.devices.has(bdf), false);
  assert.equal(r(m, BOB, VFSTATUS), 0xffff_ffff, 'bob\'s window is empty');
  assert.equal(nicAttach(m, BOB), 2, 'the lowest free VF');
  assert.equal(r(m, BOB, VFRDLEN), 0, 'with its registers reset');
  replayMatches(rig);
});

test('vanilla: dom0\'s netback copies the frames, holding the guests\' plaintext; its bridge does not spoof-check', () => {
  const rig = boot('vanilla');
  const { m, events } = rig;
  driverUp(m, ALICE);
  driverUp(m, BOB);
  const from = events.length;
  const forged = udp(1, MAC[1], 9, { src: MAC[3] });
  send(m, ALICE, forged);
  assert.deepEqual(frameAts(events, from), ['netback.tx:ok', 'vf1.tx:ok', 'switch:ok', 'netback.rx:ok', 'vf2.rx:ok']);
  assert.equal(since(events, from, 'dma.request').length, 0, 'no device DMA: dom0 does the copying');
  const copies = since(events, from, 'netback.copy');
  assert.ok(copies.some((c) => c.dom === ALICE && c.dir === 'tx' && Buffer.from(c.data).equals(Buffer.from(forged))));
  assert.ok(copies.some((c) => c.dom === BOB && c.dir === 'rx' && Buffer.from(c.data).equals(Buffer.from(forged))));
  assert.deepEqual(peek(m, BOB, RX_BUFFERS, forged.length), forged);
  assert.deepEqual(since(events, from, 'msi').map((e) => [e.dom, e.vector]), [[BOB, VECTOR], [ALICE, VECTOR]]);
  replayMatches(rig);
});

test('vanilla: with dom0\'s backend down, no guest\'s I/O moves', () => {
  const { m, events } = boot('vanilla');
  driverUp(m, ALICE);
  driverUp(m, BOB);
  m.emit('netback.state', { up: false, reason: 'dom0 crashed' });
  const from = events.length;
  send(m, ALICE, udp(1, MAC[1]));
  assert.deepEqual(frameAts(events, from), [], 'the doorbell completes nothing');
  assert.equal(r(m, ALICE, VFTDH), 0);
  assert.equal(since(events, from, 'netback.copy').length, 0);
  wireReceive(m, 0);
  assert.deepEqual(frameAts(events, from), ['wire.in:ok', 'switch:backend-down']);
  assert.equal(r(m, BOB, VFRDH), 0);
  m.emit('netback.state', { up: true, reason: 'dom0 restarted' });
  nicServiceQueues(nicPort(m));
  assert.equal(r(m, ALICE, VFTDH), 1, 'the queued frame goes once the backend is back');
  assert.equal(r(m, BOB, VFRDH), 1);
});

test('the frame a VF sends keeps its bytes through the whole path (any payload, any length)', () => {
  const { m, events } = boot('secure');
  driverUp(m, ALICE);
  driverUp(m, BOB, RING_DESCRIPTORS - 1);
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 1400 }), (payload) => {
    w(m, BOB, VFRDT, (r(m, BOB, VFRDH) + RING_DESCRIPTORS - 1) % RING_DESCRIPTORS);
    const frame = buildFrame({ dst: MAC[1], src: MAC[0], payload });
    const from = events.length;
    const rdh = r(m, BOB, VFRDH);
    send(m, ALICE, frame);
    assert.deepEqual(frameAts(events, from).slice(-1), ['vf2.rx:ok']);
    assert.deepEqual(peek(m, BOB, RX_BUFFERS + 0x800 * rdh, frame.length), frame);
  }), { numRuns: 20 });
});
