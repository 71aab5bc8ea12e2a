/** The IOMMU (VT-d): context entries, IOTLB and fault records, as the machine has them. */
import type { MachineState } from '../core/state.ts';
import { IOMMU, deviceLines } from './io-view.ts';
import { Lines } from './Lines.tsx';

export interface IommuPaneProps {
  /** The machine state at the position. */
  state: MachineState;
  height: number;
  width: number;
}

export function IommuPane({ state, height, width }: IommuPaneProps) {
  return <Lines lines={deviceLines(state, IOMMU)} rows={height} width={width} />;
}
