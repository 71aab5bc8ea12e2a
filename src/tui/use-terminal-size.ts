/** Tells the controller the terminal's size, now and on every resize (or a fixed size for tests). */
import { useEffect } from 'react';
import { useStdout } from 'ink';
import type { TuiController } from './controller.ts';
import { DESIGN_SIZE, type Size } from './layout.ts';

export function useTerminalSize(controller: TuiController, fixed: Size | undefined): void {
  const { stdout } = useStdout();
  useEffect(() => {
    if (fixed) {
      controller.setSize(fixed);
      return undefined;
    }
    const update = (): void => controller.setSize({ columns: stdout.columns || DESIGN_SIZE.columns, rows: stdout.rows || DESIGN_SIZE.rows });
    update();
    stdout.on('resize', update);
    return () => { stdout.off('resize', update); };
  }, [controller, stdout, fixed?.columns, fixed?.rows]);
}
