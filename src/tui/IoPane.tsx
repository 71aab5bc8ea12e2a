/** The I/O tab: IOMMU, interrupt remapping and NIC/SIOM stacked, sharing the pane's rows (io-view.ts). */
import type { MachineState } from '../core/machine/state.ts';
import { ioLines } from './io-view.ts';
import { Lines } from './Lines.tsx';
import type { Theme } from './theme.ts';

export interface IoPaneProps {
  /** The machine state at the position. */
  state: MachineState;
  /** Lines scrolled; 0 is the overview. */
  row: number;
  height: number;
  width: number;
  theme: Theme;
}

export function IoPane({ state, row, height, width, theme }: IoPaneProps) {
  return <Lines lines={ioLines(state, width, height, theme, row)} rows={height} width={width} />;
}
