/** The interrupt remapping table, as the machine has it. */
import type { MachineState } from '../core/state.ts';
import { INTERRUPT_REMAPPING, deviceLines } from './io-view.ts';
import { Lines } from './Lines.tsx';

export interface InterruptRemappingPaneProps {
  /** The machine state at the position. */
  state: MachineState;
  height: number;
  width: number;
}

export function InterruptRemappingPane({ state, height, width }: InterruptRemappingPaneProps) {
  return <Lines lines={deviceLines(state, INTERRUPT_REMAPPING)} rows={height} width={width} />;
}
