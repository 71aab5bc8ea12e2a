/**
 * The keys, in one table: the controller dispatches from it and the help overlay prints it,
 * so the two cannot disagree.
 */
import type { Key } from 'ink';

/** A key as the tables name it: 'left', 'S-left' (shift), 'pageup', 'enter', 'esc', 'tab', or the typed text. */
export type KeyName = string;

function withModifiers(key: Key, name: string): KeyName {
  if (key.shift) return `S-${name}`;
  return key.ctrl ? `C-${name}` : name;
}

/** A key press: its name for the tables, and the text it typed ('' for a named key). */
export interface KeyPress {
  name: KeyName;
  text: string;
}

/** Ink's (input, key) pair as a key press. Pasted text comes through whole. */
export function keyPress(input: string, key: Key): KeyPress {
  const name = keyName(input, key);
  return { name, text: name === input && !key.ctrl ? input : '' };
}

/**
 * Ink's (input, key) pair as the presses the user made. Escape and a key read together
 * ("\x1bq") reach Ink as Alt+key; the TUI binds no Alt keys, so it is Escape, then the key:
 * what a user who pressed Esc and q quickly meant.
 */
export function keyPresses(input: string, key: Key): KeyPress[] {
  if (key.meta && !key.escape && /^[\x20-\x7e]+$/.test(input)) return [{ name: 'esc', text: '' }, { name: input, text: input }];
  return [keyPress(input, key)];
}

const TYPED_CONTROLS: Record<string, KeyName> = { '\r': 'enter', '\n': 'enter', '\t': 'tab', '\x7f': 'backspace', '\b': 'backspace', '\x1b': 'esc' };

/**
 * Splits text that arrived in one read (fast typing, a paste, keys sent by a script) into
 * key presses: line ends become Enter and so on; printable text stays one press when a text
 * field takes it, else one press per character.
 */
export function splitTyped(text: string, keepText: boolean): KeyPress[] {
  const presses: KeyPress[] = [];
  let run = '';
  const flush = (): void => {
    if (run !== '') presses.push({ name: run, text: run });
    run = '';
  };
  for (const ch of text) {
    const control = TYPED_CONTROLS[ch];
    if (control !== undefined) { flush(); presses.push({ name: control, text: '' }); continue; }
    if (ch < ' ') continue;
    run += ch;
    if (!keepText) flush();
  }
  flush();
  return presses;
}

function keyName(input: string, key: Key): KeyName {
  if (key.leftArrow) return withModifiers(key, 'left');
  if (key.rightArrow) return withModifiers(key, 'right');
  if (key.upArrow) return withModifiers(key, 'up');
  if (key.downArrow) return withModifiers(key, 'down');
  if (key.pageUp) return 'pageup';
  if (key.pageDown) return 'pagedown';
  if (key.home) return 'home';
  if (key.end) return 'end';
  if (key.return) return 'enter';
  if (key.escape) return 'esc';
  if (key.tab) return key.shift ? 'S-tab' : 'tab';
  // Terminals send DEL (0x7f) for the Backspace key; Ink calls that 'delete'.
  if (key.backspace || key.delete) return 'backspace';
  if (key.ctrl) return `C-${input}`;
  return input;
}

export type PaneId = 'events' | 'machine' | 'memory' | 'smm' | 'io';
export type StatePaneId = Exclude<PaneId, 'events'>;
export const PANES: readonly PaneId[] = ['events', 'machine', 'memory', 'smm', 'io'];

export type BrowseAction =
  | 'step-back' | 'step-forward' | 'back-100' | 'forward-100' | 'back-1000' | 'forward-1000'
  | 'start' | 'end' | 'jump' | 'search' | 'search-next' | 'search-previous'
  | 'violation-previous' | 'violation-next' | 'exit-previous' | 'exit-next' | 'fault-previous' | 'fault-next'
  | 'focus-next' | 'focus-previous' | 'fork' | 'diff' | 'help' | 'quit' | 'cancel'
  | 'explain' | 'watch' | 'unwatch' | 'access-previous' | 'access-next' | 'origin' | 'provenance';

export type PanelAction = 'select-previous' | 'select-next' | 'go' | 'close';

export type PaneAction =
  | 'step-back' | 'step-forward' | 'select-previous' | 'select-next' | 'domain-previous' | 'domain-next'
  | 'scroll-up' | 'scroll-down' | 'follow';

export type DiffAction =
  | 'step-back' | 'step-forward' | 'back-100' | 'forward-100' | 'back-1000' | 'forward-1000'
  | 'start' | 'end' | 'divergence-next' | 'divergence-previous' | 'scroll-up' | 'scroll-down' | 'close' | 'help';

export interface Binding<A extends string> {
  keys: readonly KeyName[];
  action: A;
  help: string;
  /** The help of this binding and the next as one line, for a help screen short of rows. */
  pair?: string;
}

export const BROWSE_KEYS: readonly Binding<BrowseAction>[] = [
  { keys: ['left', 'h'], action: 'step-back', help: 'one event back', pair: 'one event back / forward' },
  { keys: ['right', 'l'], action: 'step-forward', help: 'one event forward' },
  { keys: ['pageup'], action: 'back-100', help: '100 events back', pair: '100 events back / forward' },
  { keys: ['pagedown'], action: 'forward-100', help: '100 events forward' },
  { keys: ['S-left', 'H'], action: 'back-1000', help: '1000 events back', pair: '1000 events back / forward' },
  { keys: ['S-right', 'L'], action: 'forward-1000', help: '1000 events forward' },
  { keys: ['home', 'g'], action: 'start', help: 'first event' },
  { keys: ['end', 'G'], action: 'end', help: 'end (follows a live run)' },
  { keys: [':'], action: 'jump', help: 'jump to a seq (N +N -N end)' },
  { keys: ['/'], action: 'search', help: 'search: kind dom:X 0xA text' },
  { keys: ['n'], action: 'search-next', help: 'next match', pair: 'next / previous match' },
  { keys: ['N'], action: 'search-previous', help: 'previous match' },
  { keys: ['['], action: 'violation-previous', help: 'previous violation', pair: 'previous / next violation' },
  { keys: [']'], action: 'violation-next', help: 'next violation' },
  { keys: ['e'], action: 'exit-previous', help: 'previous VM exit', pair: 'previous / next VM exit' },
  { keys: ['E'], action: 'exit-next', help: 'next VM exit' },
  { keys: ['{'], action: 'fault-previous', help: 'previous fault or exception', pair: 'prev / next fault/exception' },
  { keys: ['}'], action: 'fault-next', help: 'next fault or exception' },
  { keys: ['tab'], action: 'focus-next', help: 'next pane (1-5 pick one)', pair: 'next / prev pane (1-5 pick)' },
  { keys: ['S-tab'], action: 'focus-previous', help: 'previous pane' },
  { keys: ['f'], action: 'fork', help: 'fork here, then diff' },
  { keys: ['d'], action: 'diff', help: 'diff with another run' },
  { keys: ['x'], action: 'explain', help: 'explain the violation' },
  { keys: ['w'], action: 'watch', help: 'watch the memory bytes', pair: 'watch memory bytes / stop' },
  { keys: ['W'], action: 'unwatch', help: 'stop watching' },
  { keys: ['('], action: 'access-previous', help: 'previous watched access', pair: 'prev / next watched access' },
  { keys: [')'], action: 'access-next', help: 'next watched access' },
  { keys: ['o'], action: 'origin', help: 'go to the bytes\' origin' },
  { keys: ['p'], action: 'provenance', help: 'provenance of the bytes' },
  { keys: ['?'], action: 'help', help: 'this help' },
  { keys: ['esc'], action: 'cancel', help: 'stop a search or a query' },
  { keys: ['q', 'C-c'], action: 'quit', help: 'quit' },
];

/** Keys of the focused pane; they win over the keys above. */
export const PANE_KEYS: Record<PaneId, readonly Binding<PaneAction>[]> = {
  events: [
    { keys: ['up', 'k'], action: 'step-back', help: 'one event back', pair: 'one event back / forward' },
    { keys: ['down', 'j'], action: 'step-forward', help: 'one event forward' },
  ],
  machine: [
    { keys: ['up', 'k'], action: 'select-previous', help: 'previous domain', pair: 'previous / next domain' },
    { keys: ['down', 'j'], action: 'select-next', help: 'next domain' },
    { keys: ['.'], action: 'follow', help: 'follow the selected event' },
  ],
  memory: [
    { keys: ['up'], action: 'select-previous', help: 'previous guest frame', pair: 'previous / next guest frame' },
    { keys: ['down'], action: 'select-next', help: 'next guest frame' },
    { keys: ['<'], action: 'domain-previous', help: 'previous domain', pair: 'previous / next domain' },
    { keys: ['>'], action: 'domain-next', help: 'next domain' },
    { keys: ['k'], action: 'scroll-up', help: 'scroll the frame up', pair: 'scroll the frame up / down' },
    { keys: ['j'], action: 'scroll-down', help: 'scroll the frame down' },
    { keys: ['.'], action: 'follow', help: 'follow the selected event' },
  ],
  smm: [
    { keys: ['up', 'k'], action: 'scroll-up', help: 'scroll the frame map up', pair: 'scroll frame map up / down' },
    { keys: ['down', 'j'], action: 'scroll-down', help: 'scroll the frame map down' },
    { keys: ['.'], action: 'follow', help: 'follow the selected event' },
  ],
  io: [
    { keys: ['up', 'k'], action: 'scroll-up', help: 'scroll up (top: overview)', pair: 'scroll I/O tables up / down' },
    { keys: ['down', 'j'], action: 'scroll-down', help: 'scroll down (every table)' },
  ],
};

/** Keys of a forensic pane (explain, provenance) while it is open; the keys above work too. */
export const PANEL_KEYS: readonly Binding<PanelAction>[] = [
  { keys: ['up', 'k'], action: 'select-previous', help: 'previous seq in the pane', pair: 'prev / next seq in the pane' },
  { keys: ['down', 'j'], action: 'select-next', help: 'next seq in the pane' },
  { keys: ['enter'], action: 'go', help: 'jump to the selected seq' },
  { keys: ['esc'], action: 'close', help: 'close the pane' },
];

export const DIFF_KEYS: readonly Binding<DiffAction>[] = [
  { keys: ['left', 'h'], action: 'step-back', help: 'one event back', pair: 'one event back / forward' },
  { keys: ['right', 'l'], action: 'step-forward', help: 'one event forward' },
  { keys: ['pageup'], action: 'back-100', help: '100 events back', pair: '100 events back / forward' },
  { keys: ['pagedown'], action: 'forward-100', help: '100 events forward' },
  { keys: ['S-left', 'H'], action: 'back-1000', help: '1000 events back', pair: '1000 events back / forward' },
  { keys: ['S-right', 'L'], action: 'forward-1000', help: '1000 events forward' },
  { keys: ['home', 'g'], action: 'start', help: 'the first divergence' },
  { keys: ['end', 'G'], action: 'end', help: 'the end of the longer run' },
  { keys: ['n'], action: 'divergence-next', help: 'next divergence' },
  { keys: ['N'], action: 'divergence-previous', help: 'previous divergence' },
  { keys: ['up', 'k'], action: 'scroll-up', help: 'scroll state differences' },
  { keys: ['down', 'j'], action: 'scroll-down', help: 'scroll state differences' },
  { keys: ['?'], action: 'help', help: 'help' },
  { keys: ['esc', 'q', 'd'], action: 'close', help: 'back to the run' },
];

export function actionFor<A extends string>(bindings: readonly Binding<A>[], name: KeyName): A | undefined {
  return bindings.find((b) => b.keys.includes(name))?.action;
}

const KEY_LABELS: Record<string, string> = {
  left: '<-', right: '->', up: 'up', down: 'down', 'S-left': 'S-<-', 'S-right': 'S->', pageup: 'PgUp',
  pagedown: 'PgDn', home: 'Home', end: 'End', esc: 'Esc', tab: 'Tab', 'S-tab': 'S-Tab', 'C-c': 'C-c', enter: 'Enter',
};

/** How the help overlay names a binding's keys: "<- h". */
export function keysLabel(keys: readonly KeyName[]): string {
  return keys.map((k) => KEY_LABELS[k] ?? k).join(' ');
}
