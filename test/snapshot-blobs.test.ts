/**
 * What a recorder remembers of the blobs it stored (KnownBlobs): a checkpoint hands over only
 * the pages the one before it did not refer to, and what it remembers is the last state's
 * pages, not every page of the recording (which grows with it: 100M events of the long
 * workload stored 182,297 page versions). A page met again after it was forgotten is handed over again;
 * the store ignores the duplicate.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { dehydrate, KnownBlobs } from '../src/core/machine/snapshot.ts';
import { initialState } from '../src/core/machine/state.ts';
import type { MachineState } from '../src/core/machine/state.ts';

const SCENARIO = `
seed: 1
machine: { memoryMiB: 4, pcpus: 1, profile: vanilla }
domains:
  - name: alice
    memoryKiB: 64
    guest:
      ops: [ { write: { gpa: 0x1000, text: "hello" } } ]
`;

function stateWithPages(count: number): MachineState {
  const state = initialState(parseScenario(SCENARIO, 'pages.yaml'));
  state.memory.clear();
  for (let mfn = 0; mfn < count; mfn++) state.memory.set(mfn, { bytes: new Uint8Array(4096).fill(mfn), writer: 1 });
  return state;
}

/** The pages of `state` among a checkpoint's blobs, by their first byte (each page of these tests has its own). */
function pagesHandedOver(state: MachineState, known: KnownBlobs): number[] {
  const pages = new Map([...state.memory.values()].map((p) => [createHash('sha256').update(p.bytes).digest('hex'), p.bytes[0]]));
  const { blobs } = dehydrate(state, known);
  return blobs.flatMap(([hash]) => pages.get(Buffer.from(hash).toString('hex')) ?? []).sort((a, b) => a - b);
}

test('a checkpoint hands over the pages the last one did not refer to, and a page met again after it was forgotten', () => {
  const state = stateWithPages(3);
  const known = new KnownBlobs();
  assert.deepEqual(pagesHandedOver(state, known), [0, 1, 2], 'the first checkpoint stores every page');
  assert.deepEqual(pagesHandedOver(state, known), [], 'nothing changed: nothing to store');

  state.memory.set(2, { bytes: new Uint8Array(4096).fill(200), writer: 1 });
  assert.deepEqual(pagesHandedOver(state, known), [200], 'only the page that changed');
  assert.deepEqual(pagesHandedOver(state, known), []);

  // Page 2 goes back to its first content, referred to by no checkpoint since the second.
  state.memory.set(2, { bytes: new Uint8Array(4096).fill(2), writer: 1 });
  assert.deepEqual(pagesHandedOver(state, known), [2], 'forgotten once no checkpoint referred to it');
});

test('what a recorder remembers is one state\'s pages, however many versions of them it stored', () => {
  const state = stateWithPages(4);
  const known = new KnownBlobs();
  pagesHandedOver(state, known);
  // A thousand checkpoints, each with page 3 changed: a thousand versions stored.
  for (let version = 0; version < 1000; version++) {
    const bytes = new Uint8Array(4096);
    bytes[0] = 3;
    new DataView(bytes.buffer).setUint32(8, version);
    state.memory.set(3, { bytes, writer: 1 });
    assert.deepEqual(pagesHandedOver(state, known), [3]);
  }
  // Every version but the last is forgotten: the first one is handed over again.
  const first = new Uint8Array(4096);
  first[0] = 3;
  state.memory.set(3, { bytes: first, writer: 1 });
  assert.deepEqual(pagesHandedOver(state, known), [3]);
  // The pages that never changed were never handed over again.
  assert.deepEqual(pagesHandedOver(state, known), []);
});
