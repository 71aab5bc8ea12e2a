/**
 * A live machine writes the pages only it holds in place (and patches their cached
 * plaintext and forgets their decoded instructions) instead of copying them per store. That
 * must change nothing a recording shows:
 * - a machine that shares every page after every step, so that every store copies, records
 *   the same events, byte for byte, on random x86 programs in both profiles;
 * - a guest that rewrites its own next instruction runs the new one (the page was written
 *   in place, so a decode cached for it must not be reused);
 * - a checkpoint taken while pages are private still equals the fold of the events before it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { Event } from '../src/events/schema.ts';
import { EventCodec, schemaCodecTables } from '../src/events/codec.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { initialState } from '../src/core/machine/state.ts';
import { sharePage } from '../src/core/hypervisor/state.ts';
import { nextStep } from '../src/replay/recorder.ts';
import { TempDir, foldDigests, record, runs } from './helpers.ts';
import { instructionScenario } from './x86-arbitraries.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';

const dir = new TempDir();
after(() => dir.cleanup());

const codec = new EventCodec(schemaCodecTables());
const MAX_EVENTS = 12_000;

/** Runs a machine to the end (or MAX_EVENTS): the hash of its events, and the events. */
function runEvents(config: MachineConfig, shareEveryStep: boolean): { hash: string; events: Event[] } {
  const machine = new Machine(initialState(config));
  const hash = createHash('sha256');
  const events: Event[] = [];
  while (!machine.state.halted && events.length < MAX_EVENTS) {
    for (const event of nextStep(machine)) {
      hash.update(codec.encodeEvent(event));
      events.push(event);
    }
    if (shareEveryStep) for (const page of machine.state.memory.values()) sharePage(page.bytes);
  }
  return { hash: hash.digest('hex'), events };
}

test('writing private pages in place records the same events as copying every page on every store', () => {
  fc.assert(fc.property(instructionScenario({ maxChunks: 8 }), (scenario) => {
    const inPlace = runEvents(scenario.config, false);
    const copying = runEvents(scenario.config, true);
    assert.equal(inPlace.events.length, copying.events.length, 'event count');
    assert.equal(inPlace.hash, copying.hash, 'event hash');
  }), { numRuns: runs(40) });
});

/** A guest that patches the immediate of its own `mov eax, imm32` before running it, five times. */
const SELF_MODIFYING = (profile: string, paging: string): string => `
seed: smc
machine: { memoryMiB: 2, pcpus: 1, profile: ${profile} }
dom0: { memoryKiB: 16 }
domains:
  - name: patcher
    memoryKiB: 64
    paging: ${paging}
    guest:
      x86:
        asm: |
          bits 32
          org 0x1000
                  mov ecx, 5
                  mov ebx, 'a'
          again:  mov [patch + 1], ebx
          patch:  mov eax, 0
                  mov edx, 0xe9
                  out dx, al
                  inc ebx
                  dec ecx
                  jnz again
                  mov eax, 29
                  mov ebx, 2
                  vmcall
`;

for (const profile of ['secure', 'vanilla']) {
  for (const paging of ['ept', 'shadow']) {
    test(`a guest rewriting its next instruction runs the new one (${profile}, ${paging})`, () => {
      const { events } = runEvents(parseScenario(SELF_MODIFYING(profile, paging), 'smc.yaml'), false);
      const console = events.map((e) => (e.kind === 'io' && e.out && e.port === 0xe9 ? String.fromCharCode(e.value & 0xff) : '')).join('');
      assert.equal(console, 'abcde');
    });
  }
}

test('checkpoints taken between in-place writes equal the fold of the events before them', () => {
  fc.assert(fc.property(instructionScenario({ maxChunks: 8 }), fc.integer({ min: 20, max: 400 }), (scenario, every) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { maxEvents: MAX_EVENTS, checkpointEvery: every }, scenario.config);
    const seqs = store.checkpointSeqs(row.id);
    const expected = foldDigests(store, row, seqs);
    const timeline = new Timeline(store, row);
    for (const seq of seqs) assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), expected.get(seq), `checkpoint at ${seq}`);
    store.close();
  }), { numRuns: runs(20) });
});
