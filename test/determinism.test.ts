/**
 * Recording is deterministic: the bundled scenario recorded twice gives the same head hash
 * in each profile, and a different seed gives a different history.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROFILES, type Profile } from '../src/events/schema.ts';
import { RecordingStore } from '../src/events/store.ts';
import { StoreThread } from '../src/events/store-thread.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { recordScenario } from '../src/replay/recorder.ts';

const SCENARIO = fileURLToPath(new URL('../recordings/two-tenants.yaml', import.meta.url));
const text = readFileSync(SCENARIO, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'chronovisor-determinism-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Records into a fresh file and returns the run's head hash (hex). */
function headHash(config: MachineConfig, profile: Profile): string {
  const store = RecordingStore.create(join(dir, `r${files++}.db`), 'test');
  try {
    const result = recordScenario(store, { ...config, profile }, {
      name: `two-tenants-${profile}`, scenarioText: text, scenarioPath: 'recordings/two-tenants.yaml',
      config: JSON.stringify({ profile }), simVersion: 'test', writerPid: process.pid,
    });
    assert.equal(result.status, 'complete');
    const head = store.run(result.run).headHash.toString('hex');
    assert.equal(head, result.headHash.toString('hex'));
    return head;
  } finally {
    store.close();
  }
}

for (const profile of PROFILES) {
  test(`two-tenants recorded twice in the ${profile} profile has one head hash`, () => {
    const first = headHash(parseScenario(text, SCENARIO, (name) => readFileSync(join(dirname(SCENARIO), name), 'utf8')), profile);
    const second = headHash(parseScenario(text, SCENARIO, (name) => readFileSync(join(dirname(SCENARIO), name), 'utf8')), profile);
    assert.equal(second, first);
  });

  test(`two-tenants with different seeds has different head hashes (${profile})`, () => {
    const config = parseScenario(text, SCENARIO, (name) => readFileSync(join(dirname(SCENARIO), name), 'utf8'));
    const heads = new Set(['2011', '2012', 'another seed', '0'].map((seed) => headHash({ ...config, seed }, profile)));
    assert.equal(heads.size, 4);
  });
}

test('the two profiles record different histories', () => {
  const config = parseScenario(text, SCENARIO, (name) => readFileSync(join(dirname(SCENARIO), name), 'utf8'));
  assert.notEqual(headHash(config, 'secure'), headHash(config, 'vanilla'));
});

/**
 * A long recording moves writing its chunks' bytes, hashing and storing to a store thread;
 * an in-memory one never does. The two must store the same chunks: the same head hash.
 */
test('a long recording has one head hash whether the store thread or the recording thread writes its chunks', () => {
  const guest = fileURLToPath(new URL('../recordings/guests/bench-compute.asm', import.meta.url));
  const long = [
    'seed: thread-or-not', 'machine: { memoryMiB: 8, pcpus: 1, profile: secure }', 'dom0: { memoryKiB: 64 }', 'domains:',
    '  - { name: crc, memoryKiB: 1024, paging: ept, guest: { x86: { source: bench-compute.asm } } }',
  ].join('\n');
  const config = parseScenario(long, 'long.yaml', (name) => readFileSync(join(dirname(guest), name), 'utf8'));
  // Started and ready, so that the file's writer hands its chunks over from the ninth on.
  StoreThread.waitUntilReady();
  const heads = [join(dir, `r${files++}.db`), ':memory:'].map((path) => {
    const store = RecordingStore.create(path, 'test');
    try {
      const result = recordScenario(store, config, {
        name: 'long', scenarioText: long, scenarioPath: 'long.yaml', config: '{}', simVersion: 'test', writerPid: process.pid,
      });
      // Enough chunks (of 4096 events) for the file's writer to have handed most to its thread.
      assert.ok(result.summary.events > 40 * 4096, `only ${result.summary.events} events`);
      return store.run(result.run).headHash.toString('hex');
    } finally {
      store.close();
    }
  });
  assert.equal(heads[0], heads[1]);
});
