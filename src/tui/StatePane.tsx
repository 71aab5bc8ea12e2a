/** The state pane on screen: machine, memory, SMM or I/O, or a forensic pane in its place. */
import type { Theme } from './theme.ts';
import type { PaneView } from './view.ts';
import { IoPane } from './IoPane.tsx';
import { Lines } from './Lines.tsx';
import { MachinePane } from './MachinePane.tsx';
import { MemoryPane } from './MemoryPane.tsx';
import { SmmPane } from './SmmPane.tsx';

export interface StatePaneProps {
  /** Which pane, and what it shows. */
  pane: PaneView;
  height: number;
  width: number;
  theme: Theme;
}

export function StatePane({ pane, height, width, theme }: StatePaneProps) {
  switch (pane.id) {
    case 'machine': return <MachinePane state={pane.state} names={pane.names} dom={pane.dom} height={height} width={width} theme={theme} />;
    case 'memory': return <MemoryPane state={pane.state} names={pane.names} target={pane.target} mark={pane.mark} height={height} width={width} theme={theme} />;
    case 'smm': return <SmmPane state={pane.state} names={pane.names} row={pane.row} marked={pane.marked} height={height} width={width} theme={theme} />;
    case 'io': return <IoPane state={pane.state} row={pane.row} height={height} width={width} theme={theme} />;
    case 'forensic': return <Lines lines={pane.lines} rows={height} width={width} />;
  }
}
