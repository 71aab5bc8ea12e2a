/** The fork form: the change (one of the --set keys), its value, and how many events to run. */
import type { RunRow } from '../events/store.ts';
import { FLAWS } from '../core/hypervisor/flaws.ts';
import type { ForkField, ForkForm } from './fork-form.ts';
import { line, type Line } from './span-lines.ts';
import { Lines } from './Lines.tsx';
import { fieldText } from './text-field.ts';
import { accent, type Theme } from './theme.ts';

export interface ForkDialogProps {
  form: ForkForm;
  /** The run being forked. */
  run: RunRow;
  height: number;
  width: number;
  theme: Theme;
}

export function forkLines(form: ForkForm, run: RunRow, theme: Theme): Line[] {
  const choice = form.choices[form.choice];
  const focus = (field: ForkField): string => (form.field === field ? '>' : ' ');
  const value = choice.editable ? `[${form.field === 'value' ? fieldText(form.value) : form.value.text}]` : `${form.value.text} (fixed by the change)`;
  const events = `[${form.field === 'events' ? fieldText(form.events) : form.events.text}]`;
  const moved = form.boundary === form.at ? '' : ` (moved back to the step boundary ${form.boundary})`;
  const flaws = FLAWS.length ? '' : '; flaw.NAME: none defined yet';
  return [
    line(`fork run ${run.id} (${run.name}) at seq ${form.at}${moved}`),
    line(''),
    line(`${focus('change')} change: <- ${choice.key}=${choice.editable ? '...' : choice.value} ->  ${choice.label}  (${form.choice + 1} of ${form.choices.length})`),
    line(`${focus('value')} value:  ${value}`),
    line(`${focus('events')} events: ${events}  events to run after the fork point`),
    line(''),
    form.problem ? line(`cannot fork yet: ${form.problem}`, accent(theme, 'problem')) : line('Enter forks the run, then opens the diff of the two runs'),
    line(`changes: profile, quantum, domain.NAME.ops (running scripted guests)${flaws}`),
  ];
}

export function ForkDialog({ form, run, height, width, theme }: ForkDialogProps) {
  return <Lines lines={forkLines(form, run, theme)} rows={height} width={width} />;
}
