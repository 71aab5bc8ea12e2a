/** SMM's page permission table as a map of frames by owner, and its key table. */
import type { Mfn } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import { smmLines } from './smm-view.ts';
import { Lines } from './Lines.tsx';
import type { Theme } from './theme.ts';

export interface SmmPaneProps {
  state: MachineState;
  names: DomainNames;
  /** The first map row shown. */
  row: number;
  /** The host frame of the selected event, drawn '*'. */
  marked: Mfn | undefined;
  height: number;
  width: number;
  theme: Theme;
}

export function SmmPane({ state, names, row, marked, height, width, theme }: SmmPaneProps) {
  return <Lines lines={smmLines(state, names, row, marked, width, height, theme)} rows={height} width={width} />;
}
