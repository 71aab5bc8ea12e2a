/**
 * I/O benchmark (issue 4), recording on throughout:
 * - DMA translations per second through VT-d, IOTLB hits (one page again and again) and
 *   misses (a cycle over more pages than the IOTLB holds), each DMA an adversarial-device
 *   input step of its own, as the fuzzer makes them;
 * - packets per second from one tenant to another through SIOM (secure) and through dom0's
 *   netback (vanilla): scripted tenants, one sending and one giving receive buffers back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Profile } from '../src/events/schema.ts';
import { GENESIS_HASH, RecordingStore, RunWriter } from '../src/events/store.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { initialState } from '../src/core/machine/state.ts';
import { nextStep, recordScenario } from '../src/replay/recorder.ts';
import { RUN_FORMATS } from '../src/replay/formats.ts';
import type { Figure } from './store.ts';

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

const identity = (name: string, text: string) => ({ name, scenarioText: text, scenarioPath: `${name}.yaml`, config: '{}', simVersion: 'bench', writerPid: process.pid });

/** DMA reads by alice's VF, recorded: `iovas` cycled through `count` times. Returns translations per second. */
function dmaRate(dir: string, name: string, pages: number, iovas: (i: number) => number, count: number): number {
  const text = [
    'seed: io-bench', 'machine: { memoryMiB: 32, pcpus: 1, profile: secure }', 'dom0: { memoryKiB: 64 }',
    `domains: [ { name: alice, memoryKiB: ${pages * 4}, nic: { mac: "02:00:00:00:00:0a", ip: 10.0.0.1 }, guest: { ops: [yield] } } ]`,
  ].join('\n');
  const store = RecordingStore.create(join(dir, `${name}.db`), 'bench');
  try {
    const run = store.createRun({
      name, parentRun: null, forkSeq: null, baseSeq: 0, seed: 'io-bench', scenario: text, scenarioPath: `${name}.yaml`, config: '{}',
      formats: RUN_FORMATS, simVersion: 'bench', headHash: GENESIS_HASH, writerPid: process.pid,
    });
    const writer = new RunWriter(store, run, 0, GENESIS_HASH);
    const machine = new Machine(initialState(parseScenario(text, `${name}.yaml`)));
    while (!machine.finished) writer.append(nextStep(machine));
    const t = process.hrtime.bigint();
    for (let i = 0; i < count; i++) writer.append(machine.input(-1, 'device.dma', `1:r:0x${iovas(i).toString(16)}:64`));
    writer.flush();
    return count / seconds(t);
  } finally {
    store.close();
  }
}

/** alice sends `count` frames to bob, who gives each rx buffer back; recorded. Returns delivered packets per second. */
function packetRate(dir: string, profile: Profile, count: number): number {
  const text = [
    'seed: io-bench', `machine: { memoryMiB: 8, pcpus: 2, profile: ${profile}, quantum: 4 }`, 'dom0: { memoryKiB: 64 }',
    'domains:',
    `  - { name: alice, memoryKiB: 32, nic: { mac: "02:00:00:00:00:0a", vlan: 10, ip: 10.0.0.1 }, guest: { ops: [nic_setup, { repeat: { times: ${count}, ops: [{ nic_tx: { dst: "02:00:00:00:00:0b", text: "0123456789abcdef0123456789abcdef0123456789abcdef" } }] } }] } }`,
    `  - { name: bob, memoryKiB: 32, nic: { mac: "02:00:00:00:00:0b", vlan: 10, ip: 10.0.0.2 }, guest: { ops: [nic_setup, { repeat: { times: ${count}, ops: [{ nic_rx: { buffer: 0x6000 } }] } }] } }`,
  ].join('\n');
  const store = RecordingStore.create(join(dir, `packets-${profile}.db`), 'bench');
  try {
    const t = process.hrtime.bigint();
    const result = recordScenario(store, parseScenario(text, 'packets.yaml'), identity(`packets-${profile}`, text));
    // Five net.frame events per delivered packet on either path (tx, the path, switch, the path, rx).
    if ((result.summary.byKind['net.frame'] ?? 0) < 5 * count) throw new Error(`packets-${profile}: not every packet was delivered`);
    return count / seconds(t);
  } finally {
    store.close();
  }
}

export function benchIo(): Figure[] {
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-io-bench-'));
  try {
    const hits = dmaRate(dir, 'dma-hits', 16, () => 0x2000, 100_000);
    // 2048 pages cycled in order: the IOTLB (1024 entries, oldest out first) never holds the next one.
    const misses = dmaRate(dir, 'dma-misses', 2048, (i) => (i % 2048) * 4096, 100_000);
    const siom = packetRate(dir, 'secure', 20_000);
    const netback = packetRate(dir, 'vanilla', 20_000);
    return [
      { name: 'DMA translations/s, IOTLB hits (recorded)', value: fmt(hits) },
      { name: 'DMA translations/s, IOTLB misses (recorded)', value: fmt(misses) },
      { name: 'packets/s through SIOM (secure, recorded)', value: fmt(siom) },
      { name: 'packets/s through dom0 netback (vanilla, recorded)', value: fmt(netback) },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
