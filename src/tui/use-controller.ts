/** Connects the app to its controller: the current view, key presses, and quitting. */
import { useEffect, useSyncExternalStore } from 'react';
import { useApp, useInput } from 'ink';
import type { TuiController } from './controller.ts';
import { keyPresses } from './keymap.ts';
import type { AppView } from './view.ts';

export function useController(controller: TuiController): AppView {
  const view = useSyncExternalStore(controller.subscribe, controller.getSnapshot);
  const { exit } = useApp();
  useInput((input, key) => {
    for (const press of keyPresses(input, key)) controller.press(press);
  });
  useEffect(() => {
    if (view.quit) exit();
  }, [view.quit, exit]);
  return view;
}
