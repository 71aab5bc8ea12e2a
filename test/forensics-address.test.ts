/**
 * Addresses (src/replay/forensics/address.ts): the syntax reads back what it prints, bad
 * addresses are refused with a message naming the argument, and every name of one physical
 * byte (the owner's gpa, the frame, the vCPU's linear address, the device's iova) resolves
 * to the same host byte, in a recording with an x86 guest and a VF under VT-d.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InputError } from '../src/events/errors.ts';
import { RecordingStore } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { recordScenario } from '../src/replay/recorder.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { formatAddress, parseAddress, resolveAddress, type Address } from '../src/replay/forensics/address.ts';
import { pciBdfFormat } from '../src/core/hardware/pci/index.ts';
import { removeDir, tempDir } from './helpers/cli.ts';
import { join } from 'node:path';

const domain = fc.constantFrom('alice', 'bob', 'erin', '3');
const address: fc.Arbitrary<Address> = fc.oneof(
  fc.record({ space: fc.constant('mfn' as const), mfn: fc.nat(1 << 20), offset: fc.nat(4095), length: fc.integer({ min: 1, max: 8192 }) }),
  fc.record({ space: fc.constant('gpa' as const), domain, gpa: fc.nat(2 ** 32 - 1), length: fc.integer({ min: 1, max: 8192 }) }),
  fc.record({ space: fc.constant('linear' as const), domain, vcpu: fc.nat(7), linear: fc.nat(2 ** 32 - 1), length: fc.integer({ min: 1, max: 8192 }) }),
  fc.record({ space: fc.constant('iova' as const), bdf: fc.nat(0xffff), iova: fc.nat(2 ** 40), length: fc.integer({ min: 1, max: 8192 }) }),
  fc.record({ space: fc.constant('reg' as const), domain, vcpu: fc.nat(7), register: fc.constantFrom('eax', 'ax', 'ah', 'al', 'edi', 'di', 'bh', 'eflags') }),
);

test('an address prints as text that parses back to the same address', () => {
  fc.assert(fc.property(address, (a) => {
    assert.deepEqual(parseAddress(formatAddress(a)), { ...a });
  }), { numRuns: 500 });
});

test('the issue\'s examples parse, with their defaults', () => {
  assert.deepEqual(parseAddress('mfn:321'), { space: 'mfn', mfn: 321, offset: 0, length: 4096 });
  assert.deepEqual(parseAddress('mfn:321+0x10'), { space: 'mfn', mfn: 321, offset: 16, length: 1 });
  assert.deepEqual(parseAddress('mfn:321/64'), { space: 'mfn', mfn: 321, offset: 0, length: 64 });
  assert.deepEqual(parseAddress('gpa:bob:0x14000/62'), { space: 'gpa', domain: 'bob', gpa: 0x14000, length: 62 });
  assert.deepEqual(parseAddress('linear:erin.v0:0x8000'), { space: 'linear', domain: 'erin', vcpu: 0, linear: 0x8000, length: 1 });
  assert.deepEqual(parseAddress('iova:02:10.0:0x2000'), { space: 'iova', bdf: 0x0280, iova: 0x2000, length: 1 });
  assert.deepEqual(parseAddress('reg:erin.v0:eax'), { space: 'reg', domain: 'erin', vcpu: 0, register: 'eax' });
});

test('a bad address is an input error that names the argument and shows the syntax', () => {
  const cases: [string, RegExp][] = [
    ['phys:0x1000', /unknown address space 'phys'; spaces: mfn, gpa, linear, iova, reg/],
    ['mfn:321+0x1000', /offset 0x1000 is beyond the frame/],
    ['mfn:abc', /expected mfn:FRAME/],
    ['gpa:0x1000', /expected gpa:DOMAIN:ADDRESS/],
    ['linear:erin:0x1000', /'erin' is not a vCPU; write DOMAIN.vN/],
    ['iova:02:40.0:0x0', /device 40 is beyond 1f/],
    ['reg:erin.v0:rax', /no register 'rax'/],
    ['reg:erin.v0:eax/2', /a register has no \/LEN/],
    ['mfn:1/0', /the length after '\/' must be a number of bytes/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseAddress(text, 'ADDR'), (error: unknown) => {
      assert.ok(error instanceof InputError, `${text}: ${String(error)}`);
      assert.match(error.message, new RegExp(`^ADDR ${text.replace(/[+/.]/g, '\\$&')}: `));
      assert.match(error.message, pattern);
      assert.match(error.message, /for example mfn:321\/64/);
      return true;
    });
  }
});

// ---- resolution, on a recording: alice (x86, a VF under VT-d) and bob (scripted) ----------

let dir: string;
let store: RecordingStore;
let timeline: Timeline;

const KERNEL = `
bits 32
org 0x1000
  mov esp, 0x9000
  mov dword [0x3000], 0x11223344   ; a store through EPT (paging is off: linear = gpa)
  mov ecx, 200
spin:
  loop spin
  hlt
`;

before(() => {
  dir = tempDir('chronovisor-address');
  const text = `
seed: 7
machine: { memoryMiB: 8, pcpus: 1, profile: secure, timeslice: 500 }
dom0: { memoryKiB: 64 }
domains:
  - name: alice
    memoryKiB: 64
    nic: { mac: "02:00:00:00:00:01", vlan: 10, ip: 10.0.0.1 }
    guest: { x86: { asm: ${JSON.stringify(KERNEL)} } }
  - name: bob
    memoryKiB: 64
    guest: { ops: [ { write: { gpa: 0x1000, text: "bob" } } ] }
`;
  store = RecordingStore.create(join(dir, 'r.db'), 'test');
  const config = parseScenario(text, 'address.yaml');
  const result = recordScenario(store, config, { name: 'r', scenarioText: text, scenarioPath: 'address.yaml', config: '{}', simVersion: 'test', writerPid: process.pid });
  timeline = new Timeline(store, store.run(result.run));
});

after(() => {
  store.close();
  removeDir(dir);
});

test('every name of one physical byte resolves to the same host byte', () => {
  // The last seq at which alice's vCPU is still in the guest (before its HLT ends the run).
  const at = Math.floor(timeline.length / 2);
  const state = timeline.stateAt(at);
  const alice = [...state.domains.values()].find((d) => d.name === 'alice')!;
  const vf = state.io.vfs.find((v) => v.dom === alice.id)!;
  const mfn = alice.p2m.get(3)!;
  const iova = `iova:${pciBdfFormat(vf.bdf)}:0x3004/8`;
  const names = [`gpa:alice:0x3004/8`, `mfn:${mfn}+0x4/8`, `linear:alice.v0:0x3004/8`, iova, `gpa:${alice.id}:0x3004/8`];
  for (const name of names) {
    const resolved = resolveAddress(parseAddress(name), state, at);
    assert.deepEqual(resolved, { kind: 'memory', ranges: [{ mfn, offset: 4, length: 8 }] }, name);
  }
  // A range crossing a page boundary splits per frame, each through the p2m.
  const across = resolveAddress(parseAddress('gpa:alice:0x3ffe/4'), state, at);
  assert.deepEqual(across, { kind: 'memory', ranges: [{ mfn, offset: 0xffe, length: 2 }, { mfn: alice.p2m.get(4)!, offset: 0, length: 2 }] });
  assert.deepEqual(resolveAddress(parseAddress('reg:alice.v0:ah'), state, at), { kind: 'register', register: { dom: alice.id, vcpu: 0, slot: 0, byte: 1, length: 1 } });
});

test('an address that does not resolve at that seq is an input error saying why and what to try', () => {
  const at = Math.floor(timeline.length / 2);
  const state = timeline.stateAt(at);
  const cases: [string, RegExp][] = [
    ['gpa:carol:0x1000', /no domain 'carol' at seq \d+; domains then: .*alice/],
    ['gpa:alice:0x100000', /0x100000 is not mapped in alice's p2m at seq/],
    ['reg:bob.v0:eax', /bob.v0 is not an x86 vCPU at seq \d+: bob is a scripted guest/],
    ['linear:alice.v3:0x0', /alice.v3 is not an x86 vCPU/],
    ['iova:02:1f.7:0x0', /device 02:1f.7 is assigned to no domain/],
    [`mfn:${state.config.frames}`, /the machine has frames 0\.\.\d+/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => resolveAddress(parseAddress(text), state, at, 'ADDR'), (error: unknown) => {
      assert.ok(error instanceof InputError, `${text}: ${String(error)}`);
      assert.match(error.message, /^ADDR/);
      assert.match(error.message, pattern, text);
      return true;
    });
  }
});
