/** Domains and vCPUs at the position: registers, VMCS exit information, the instruction at EIP. */
import type { DomainId } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import { machineLines } from './machine-view.ts';
import { Lines } from './Lines.tsx';
import type { Theme } from './theme.ts';

export interface MachinePaneProps {
  /** The machine state at the position. */
  state: MachineState;
  names: DomainNames;
  /** The domain shown in detail (undefined: the first guest). */
  dom: DomainId | undefined;
  height: number;
  width: number;
  theme: Theme;
}

export function MachinePane({ state, names, dom, height, width, theme }: MachinePaneProps) {
  return <Lines lines={machineLines(state, names, dom, height, theme)} rows={height} width={width} />;
}
