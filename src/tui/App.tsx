/**
 * The time-travel TUI. All state lives in the controller (timeline, position, jobs); the
 * app only connects it to Ink and draws the view it publishes.
 */
import type { TuiController } from './controller.ts';
import type { Size } from './layout.ts';
import { Screen } from './Screen.tsx';
import { useController } from './use-controller.ts';
import { useTerminalSize } from './use-terminal-size.ts';

export interface AppProps {
  /** Owns the timeline and the navigation state; see controller.ts. */
  controller: TuiController;
  /** A fixed size (tests); without it the terminal's size, followed on resize. */
  size?: Size;
}

export function App({ controller, size }: AppProps) {
  const view = useController(controller);
  useTerminalSize(controller, size);
  return <Screen view={view} />;
}
