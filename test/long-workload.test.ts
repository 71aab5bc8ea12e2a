/**
 * The long-recording workload (recordings/long.yaml, guests/longrun.asm): each round of each
 * guest computes, takes its page faults, switches address spaces and moves a datagram through
 * the VFs. Recorded here for a few rounds (ROUNDS set in the scenario's text), the events show
 * every part of a round, the guests' own counters agree with them, and verify proves the run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Event } from '../src/events/schema.ts';
import { RecordingStore } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { ExitReason, Vector } from '../src/core/hardware/vmx/exit-reasons.ts';
import { CpuRegisterIndex } from '../src/core/hardware/cpu/cpu-state.ts';
import { guestFiles } from '../src/cli/guest-files.ts';
import { recordScenario, type DriveResult } from '../src/replay/recorder.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { verifyRun } from '../src/replay/verify.ts';
import { removeDir, tempDir } from './helpers/cli.ts';

const SCENARIO = fileURLToPath(new URL('../recordings/long.yaml', import.meta.url));
const ROUNDS = 6;
/** The page directories' frames in the guests' memory map (longrun.asm). */
const PD_A = 0xa000;
const PD_B = 0x20000;

let dir: string;
let store: RecordingStore;
let result: DriveResult;
const events: Event[] = [];

before(() => {
  dir = tempDir('chronovisor-long');
  const text = readFileSync(SCENARIO, 'utf8');
  assert.match(text, /ROUNDS: 0 \}/, 'the bundled scenario has no end');
  const finite = text.replaceAll('ROUNDS: 0 }', `ROUNDS: ${ROUNDS} }`);
  const guest = guestFiles(SCENARIO);
  const config = parseScenario(finite, SCENARIO, guest.read);
  store = RecordingStore.create(join(dir, 'long.db'), 'test');
  // The recording keeps the guest sources, as `run` does, so that verify needs no files.
  result = recordScenario(store, config, {
    name: 'long', scenarioText: finite, scenarioPath: SCENARIO, config: JSON.stringify({ files: guest.files }), simVersion: 'test', writerPid: process.pid,
  });
  for (const [, event] of new Timeline(store, store.run(result.run)).iterate()) events.push(event);
});

after(() => {
  store?.close();
  removeDir(dir);
});

const domainId = (name: string): number => {
  const created = events.find((e) => e.kind === 'domain.create' && e.name === name);
  assert.ok(created?.kind === 'domain.create', `${name} was created`);
  return created.dom;
};
const consoleLines = (dom: number): string[] => events.flatMap((e) => (e.kind === 'hypercall' && e.dom === dom && e.op === 'console_write' ? [e.text] : []));

describe('the long workload, a few rounds', () => {
  test('both guests run their rounds and shut down: the run is complete', () => {
    assert.equal(result.status, 'complete');
    for (const name of ['alice', 'bob']) {
      assert.ok(events.some((e) => e.kind === 'domain.destroy' && e.dom === domainId(name)), `${name} shut down`);
    }
  });

  test('their last console lines count the rounds, the datagrams and the page faults', () => {
    const alice = consoleLines(domainId('alice')).at(-1);
    const bob = consoleLines(domainId('bob')).at(-1);
    // alice sends one datagram a round (its tx ring has room for all of them) and bob echoes
    // what reached him; 4 page faults a round each.
    assert.match(alice ?? '', new RegExp(`^longrun sender 10\\.0\\.0\\.1: round ${ROUNDS}, ${ROUNDS} sent, \\d+ received, ${4 * ROUNDS} page faults, crc [0-9a-f]{8}\\n$`));
    const echoed = /^longrun echo 10\.0\.0\.2: round 6, (\d+) sent, (\d+) received, 24 page faults, crc [0-9a-f]{8}\n$/.exec(bob ?? '');
    assert.ok(echoed, `bob's last line: ${bob}`);
    assert.equal(echoed[1], echoed[2], 'bob echoed every datagram he received');
    const aliceReceived = Number(/(\d+) received/.exec(alice!)![1]);
    assert.ok(aliceReceived <= Number(echoed[1]), 'alice cannot receive more echoes than bob sent');
  });

  test('page faults: alice (EPT) takes #PF in the guest, bob (shadow) exits for each', () => {
    const alice = domainId('alice');
    const bob = domainId('bob');
    const aliceFaults = events.filter((e) => e.kind === 'exception' && e.dom === alice && e.vector === Vector.PF);
    assert.equal(aliceFaults.length, 4 * ROUNDS);
    for (const fault of aliceFaults) {
      assert.ok(fault.kind === 'exception' && fault.cr2 >= 0x400000 && fault.cr2 < 0x410000, 'in the window');
    }
    const bobExits = events.filter((e) => e.kind === 'vm.exit' && e.dom === bob && e.reason === ExitReason.EXCEPTION_NMI && e.vector === Vector.PF);
    assert.ok(bobExits.length >= 4 * ROUNDS, `bob's #PF exits: ${bobExits.length}`);
  });

  test('address-space switches: alice loads CR3 with both page directories, bob\'s shadows follow', () => {
    const alice = domainId('alice');
    const cr3 = new Set(events.flatMap((e) => (e.kind === 'cpu.step' && e.dom === alice ? readCr3(e.delta) : [])));
    assert.deepEqual([...cr3].sort((a, b) => a - b), [PD_A, PD_B]);
    const switches = events.filter((e) => e.kind === 'shadow.switch' && e.dom === domainId('bob'));
    assert.ok(switches.length >= ROUNDS, `bob's shadow switches: ${switches.length}`);
  });

  test('networking: frames cross the switch both ways, by DMA, with an MSI for each received frame', () => {
    const alice = domainId('alice');
    const bob = domainId('bob');
    const switched = events.filter((e) => e.kind === 'net.frame' && e.at === 'switch' && e.verdict === 'ok');
    assert.ok(switched.some((e) => e.kind === 'net.frame' && e.dom === alice) && switched.some((e) => e.kind === 'net.frame' && e.dom === bob));
    assert.ok(events.some((e) => e.kind === 'dma.request' && e.write && e.fault === 0 && e.dom === bob), 'receive DMA into bob');
    assert.ok(events.some((e) => e.kind === 'msi' && e.fault === 0 && e.dom === alice), 'an MSI delivered to alice');
    assert.ok(!events.some((e) => e.kind === 'violation'), 'nothing breaks isolation');
  });

  test('verify proves the run', () => {
    const report = verifyRun(store, store.run(result.run));
    assert.equal(report.ok, true, report.mismatch?.message);
  });
});

/** The CR3 a step's register delta writes, if any. */
function readCr3(delta: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < delta.length; i += 2) if (delta[i] === CpuRegisterIndex.CR3) out.push(delta[i + 1]);
  return out;
}
