/**
 * src/events/generated/event-codecs.ts is written by scripts/gen-codec.ts from the schema;
 * it must be what the script writes now (run `npm run gen` after changing the schema), and
 * the generator must classify fields as their types say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GENERATED_PATH, fieldClasses, generateEventCodecs } from '../scripts/gen-codec.ts';
import { EVENT_FIELDS, EVENT_KINDS } from '../src/events/schema.ts';

const classes = fieldClasses();

test('the generated event codecs are up to date with the schema (else: npm run gen)', () => {
  assert.equal(readFileSync(GENERATED_PATH, 'utf8'), generateEventCodecs(classes), `${GENERATED_PATH} is stale: run \`npm run gen\` and commit it`);
});

test('the generator reads every kind\'s fields, with the classes their types give', () => {
  assert.deepEqual([...classes.keys()].sort(), [...EVENT_KINDS].sort());
  for (const kind of EVENT_KINDS) {
    assert.deepEqual([...classes.get(kind)!.keys()].sort(), [...(EVENT_FIELDS[kind] as readonly string[])].sort(), kind);
  }
  // Spelled out from the Shape interface: aliases of number, a string union, byte arrays.
  assert.deepEqual(Object.fromEntries(classes.get('cpu.step')!), { dom: 'number', vcpu: 'number', pcpu: 'number', eip: 'number', next: 'number', delta: 'numbers' });
  assert.deepEqual(Object.fromEntries(classes.get('mem.fault')!), { dom: 'number', gpa: 'number', mfn: 'number', access: 'other', reason: 'other' });
  assert.deepEqual(Object.fromEntries(classes.get('lapic.timer')!), { dom: 'number', vcpu: 'number', lvt: 'number', initialCount: 'number', deadline: 'number', pending: 'boolean' });
  assert.equal(classes.get('mem.write')!.get('stored'), 'other');
});

test('the generator refuses a schema whose EVENT_FIELDS names a field its Shape lacks', () => {
  const lacking = new Map(classes);
  lacking.set('cpu.step', new Map([['dom', 'number']]));
  assert.throws(() => generateEventCodecs(lacking), /cpu\.step\.vcpu/);
});
