/**
 * The fork form: which modification, its value, and how many events to run. The changes it
 * offers are exactly the `--set` keys a fork accepts (src/core/machine/scenario.ts inputProblem):
 * profile, flaw.NAME, quantum and domain.NAME.ops; each is checked with replay's
 * modificationProblem against the state at the fork point before it can be submitted.
 */
import type { Seq } from '../events/schema.ts';
import { FLAWS } from '../core/hypervisor/flaws.ts';
import type { MachineState } from '../core/machine/state.ts';
import { modificationProblem } from '../replay/fork.ts';
import type { KeyPress } from './keymap.ts';
import { defaultField, editField, type TextField } from './text-field.ts';

export const FORK_EVENTS_DEFAULT = 10_000;

export interface ForkChoice {
  key: string;
  /** The value it starts with. */
  value: string;
  /** Whether the value is typed (quantum, ops) or fixed by the choice (profile, flaw). */
  editable: boolean;
  /** What it does, for people. */
  label: string;
}

export type ForkField = 'change' | 'value' | 'events';

export interface ForkForm {
  /** The position asked for, and the step boundary the fork really starts at. */
  at: Seq;
  boundary: Seq;
  choices: ForkChoice[];
  choice: number;
  field: ForkField;
  value: TextField;
  events: TextField;
  /** Why it cannot be submitted yet, if it cannot. */
  problem: string | undefined;
}

/** The modifications that make sense on this state. */
export function forkChoices(state: MachineState): ForkChoice[] {
  const other = state.profile === 'secure' ? 'vanilla' : 'secure';
  const choices: ForkChoice[] = [{ key: 'profile', value: other, editable: false, label: `switch the profile to ${other}` }];
  for (const flaw of FLAWS as readonly string[]) {
    const on = state.flaws.includes(flaw);
    choices.push({ key: `flaw.${flaw}`, value: on ? 'off' : 'on', editable: false, label: `turn the flaw ${flaw} ${on ? 'off' : 'on'}` });
  }
  choices.push({ key: 'quantum', value: String(state.quantum), editable: true, label: 'operations a scripted vCPU runs per turn' });
  for (const d of state.domains.values()) {
    if (d.id === 0 || d.status !== 'running' || d.kind !== 'scripted') continue;
    choices.push({ key: `domain.${d.name}.ops`, value: '[exit]', editable: true, label: `replace ${d.name}'s remaining operations (YAML list)` });
  }
  return choices;
}

export function createForkForm(state: MachineState, at: Seq, boundary: Seq): ForkForm {
  const choices = forkChoices(state);
  const form: ForkForm = {
    at, boundary, choices, choice: 0, field: 'change', value: defaultField(choices[0].value),
    events: defaultField(String(FORK_EVENTS_DEFAULT)), problem: undefined,
  };
  return { ...form, problem: formProblem(form, state) };
}

export function formProblem(form: ForkForm, state: MachineState): string | undefined {
  const choice = form.choices[form.choice];
  const problem = modificationProblem(state, choice.key, form.value.text);
  if (problem) return problem;
  return /^[1-9]\d{0,8}$/.test(form.events.text) ? undefined : 'events must be a whole number from 1';
}

function fieldsOf(form: ForkForm): ForkField[] {
  return form.choices[form.choice].editable ? ['change', 'value', 'events'] : ['change', 'events'];
}

function moveField(form: ForkForm, by: 1 | -1): ForkForm {
  const fields = fieldsOf(form);
  const at = fields.indexOf(form.field);
  return { ...form, field: fields[(at + by + fields.length) % fields.length] };
}

function moveChoice(form: ForkForm, by: 1 | -1): ForkForm {
  const choice = (form.choice + by + form.choices.length) % form.choices.length;
  return { ...form, choice, value: defaultField(form.choices[choice].value) };
}

export type FormOutcome = { kind: 'edit'; form: ForkForm } | { kind: 'submit' } | { kind: 'cancel' } | { kind: 'ignored' };

/** What a key does to the form; the caller re-checks the problem with the state. */
export function forkFormKey(form: ForkForm, press: KeyPress): FormOutcome {
  const edit = (next: ForkForm): FormOutcome => ({ kind: 'edit', form: next });
  switch (press.name) {
    case 'esc': return { kind: 'cancel' };
    case 'enter': return form.problem === undefined ? { kind: 'submit' } : { kind: 'ignored' };
    case 'down': case 'tab': return edit(moveField(form, 1));
    case 'up': case 'S-tab': return edit(moveField(form, -1));
    default: break;
  }
  if (form.field === 'change') {
    if (press.name === 'left') return edit(moveChoice(form, -1));
    if (press.name === 'right' || press.name === ' ') return edit(moveChoice(form, 1));
    return { kind: 'ignored' };
  }
  const target = form.field === 'value' ? form.value : form.events;
  const edited = editField(target, press);
  if (edited === undefined) return { kind: 'ignored' };
  return edit(form.field === 'value' ? { ...form, value: edited } : { ...form, events: edited });
}

/** The modification the form describes, as `--set` would take it. */
export function formModification(form: ForkForm): [string, string] {
  return [form.choices[form.choice].key, form.value.text];
}
