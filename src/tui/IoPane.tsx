/** The I/O tab: IOMMU, interrupt remapping and NIC/SIOM stacked, sharing the pane's height. */
import { Box } from 'ink';
import type { MachineState } from '../core/state.ts';
import { IommuPane } from './IommuPane.tsx';
import { InterruptRemappingPane } from './InterruptRemappingPane.tsx';
import { NicPane } from './NicPane.tsx';

export interface IoPaneProps {
  state: MachineState;
  height: number;
  width: number;
}

export function IoPane({ state, height, width }: IoPaneProps) {
  const third = Math.max(1, Math.floor(height / 3));
  const last = Math.max(1, height - 2 * third);
  return (
    <Box flexDirection="column" height={height}>
      <IommuPane state={state} height={third} width={width} />
      <InterruptRemappingPane state={state} height={third} width={width} />
      <NicPane state={state} height={last} width={width} />
    </Box>
  );
}
