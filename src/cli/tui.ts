/**
 * `tui`: the time-travel terminal UI on a recording. This is where the TUI meets the
 * outside: the terminal (alternate screen, raw mode, restoring both on every way out), the
 * read-only connection it browses with, the writable one a fork needs, and the timer that
 * follows a recording still being written.
 */
import { createElement } from 'react';
import { render, type Instance } from 'ink';
import { AssertionFailed, InputError } from '../events/errors.ts';
import type { RecordingStore, RunRow } from '../events/store.ts';
import { forkRun } from '../replay/fork.ts';
import { App } from '../tui/App.tsx';
import { TuiController, type TuiServices } from '../tui/controller.ts';
import { DESIGN_SIZE } from '../tui/layout.ts';
import { realScheduler } from '../tui/scheduler.ts';
import { themeFor } from '../tui/theme.ts';
import { SIM_VERSION, effectiveStatus, openForReading, openForWriting, resolveRun } from './context.ts';
import { keepHeapNearLive } from './heap.ts';

/** How often a recording that is still being written is re-read. */
const LIVE_REFRESH_MS = 500;
const ALTERNATE_SCREEN = '\x1b[?1049h';
const MAIN_SCREEN = '\x1b[?1049l';
const SHOW_CURSOR = '\x1b[?25h';
const EXIT_INTERNAL = 3;

export interface TuiOptions {
  run?: string;
}

/** Forks open their own writable connection: the TUI's own stays read-only. */
function services(db: string): TuiServices {
  return {
    status: effectiveStatus,
    fork(request) {
      const store = openForWriting(db);
      try {
        const result = forkRun(store, {
          parent: request.parent, at: request.at, modifications: request.modifications, simVersion: SIM_VERSION, writerPid: process.pid,
        }, { maxEvents: request.events });
        return { run: result.run, forkSeq: result.forkSeq };
      } finally {
        store.close();
      }
    },
  };
}

/**
 * Takes the terminal (alternate screen) and guarantees it back: on quit, on a signal and on
 * an exception that escapes a key handler. Returns the function that gives it back.
 */
function takeTerminal(instance: () => Instance | undefined): () => void {
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, onSignal);
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    try { instance()?.unmount(); } catch { /* the app may be half gone: the terminal matters more */ }
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdout.write(SHOW_CURSOR + MAIN_SCREEN);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    restore();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as Record<string, number>)[signal]);
  };
  const onCrash = (error: unknown): void => {
    restore();
    const kind = error instanceof AssertionFailed ? 'internal error (an assertion failed; this is a bug)' : 'internal error';
    process.stderr.write(`chronovisor: ${kind}: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(EXIT_INTERNAL);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  process.stdout.write(ALTERNATE_SCREEN);
  return restore;
}

/** Re-reads a live recording on a timer until its writer is done. */
function followLive(controller: TuiController): () => void {
  if (controller.run.status !== 'recording') return () => undefined;
  const timer = setInterval(() => {
    if (!controller.refreshLive()) clearInterval(timer);
  }, LIVE_REFRESH_MS);
  return () => clearInterval(timer);
}

async function runApp(store: RecordingStore, db: string, run: RunRow): Promise<number> {
  const size = { columns: process.stdout.columns || DESIGN_SIZE.columns, rows: process.stdout.rows || DESIGN_SIZE.rows };
  // Built before the terminal is taken: a recording too damaged to show its first screen is
  // reported like any bad input, on the normal screen.
  const controller = new TuiController({ store, run, services: services(db), scheduler: realScheduler, theme: themeFor(process.env.NO_COLOR), size });
  let instance: Instance | undefined;
  const restore = takeTerminal(() => instance);
  const stopLive = followLive(controller);
  try {
    instance = render(createElement(App, { controller }), { exitOnCtrlC: true, patchConsole: true });
    await instance.waitUntilExit();
    return 0;
  } finally {
    stopLive();
    controller.dispose();
    restore();
  }
}

/** `chronovisor tui DB [--run R]`. */
export async function tuiCommand(db: string, options: TuiOptions): Promise<number> {
  keepHeapNearLive();
  const store = openForReading(db);
  try {
    // The recording and the run are checked first: their errors say more than this one.
    const run = resolveRun(store, options.run);
    if (!process.stdout.isTTY || !process.stdin.isTTY) {
      throw new InputError('argument', 'tui needs a terminal (stdin and stdout a TTY); for scripts use log, state and diff');
    }
    return await runApp(store, db, run);
  } finally {
    store.close();
  }
}

/**
 * Opens the TUI after `demo` has printed its summary, when there is a terminal to open it
 * in. The command has returned by then, so the outcome is reported here.
 */
