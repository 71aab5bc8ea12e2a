/** The NIC and SIOM queues, as the machine has them. */
import type { MachineState } from '../core/state.ts';
import { NIC, deviceLines } from './io-view.ts';
import { Lines } from './Lines.tsx';

export interface NicPaneProps {
  /** The machine state at the position. */
  state: MachineState;
  height: number;
  width: number;
}

export function NicPane({ state, height, width }: NicPaneProps) {
  return <Lines lines={deviceLines(state, NIC)} rows={height} width={width} />;
}
