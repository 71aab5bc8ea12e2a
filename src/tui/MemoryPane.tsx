/** A guest frame in hex: as stored (what dom0 and physical memory hold) beside the owner's plaintext. */
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import { memoryLines, type ByteRange, type MemoryTarget } from './memory-view.ts';
import { Lines } from './Lines.tsx';
import type { Theme } from './theme.ts';

export interface MemoryPaneProps {
  state: MachineState;
  names: DomainNames;
  /** The frame shown and its first row (undefined: nothing to show yet). */
  target: MemoryTarget | undefined;
  /** Bytes the selected event touched, marked '*'. */
  mark: ByteRange | undefined;
  height: number;
  width: number;
  theme: Theme;
}

export function MemoryPane({ state, names, target, mark, height, width, theme }: MemoryPaneProps) {
  return <Lines lines={memoryLines(state, names, target, mark, width, height, theme)} rows={height} width={width} />;
}
