/**
 * The TUI's controller: it owns the timeline, the block index, the navigation state and the
 * background jobs, turns key presses into new states, and publishes an immutable view after
 * every change (React subscribes with useSyncExternalStore). Components never touch the
 * timeline; tests and the benchmark drive this object directly or through the app.
 *
 * Work that can take long (a search, a marker jump, the next divergence, indexing the run)
 * runs in slices on the JobRunner, between key presses. A search's first slice runs inside
 * the key press, so a nearby match costs no extra frame.
 */
import { InputError } from '../events/errors.ts';
import type { Event, Seq } from '../events/schema.ts';
import type { RecordingStore, RunRow, RunStatus } from '../events/store.ts';
import type { MachineState } from '../core/machine/state.ts';
import { domainNames } from '../replay/format.ts';
import { runFormatProblem } from '../replay/formats.ts';
import { Timeline } from '../replay/timeline.ts';
import { violationCount, type RunSummary } from '../replay/summary.ts';
import type { QuerySteps } from '../replay/forensics/provenance.ts';
import { ForensicSession } from '../replay/forensics/session.ts';
import { BlockIndex } from './block-index.ts';
import { DiffSession, DivergenceJob } from './diff-session.ts';
import {
  QueryJob, cursorAddress, eventOrigins, explainOf, explainPanel, movePanel, panelLines, provenanceOf, provenancePanel, selectedSeq, watchAccess,
  watchText, type CursorAddress, type ForensicPanel, type Watch,
} from './forensics.ts';
import { createForkForm, formModification, formProblem, forkFormKey, type ForkForm } from './fork-form.ts';
import { JobRunner } from './job-runner.ts';
import {
  BROWSE_KEYS, DIFF_KEYS, PANE_KEYS, PANEL_KEYS, PANES, actionFor, splitTyped, type BrowseAction, type DiffAction, type KeyPress, type PaneAction,
  type PanelAction,
} from './keymap.ts';
import { layoutFor, type Layout, type Size } from './layout.ts';
import { focusBy, focusPane, initialNav, moveBy, moveTo, type NavState } from './navigation.ts';
import { ioKey, machineKey, memoryKey, smmKey, type PaneContext } from './pane-keys.ts';
import type { Scheduler } from './scheduler.ts';
import { SearchJob, kindMatcher, parseQuery, type Matcher } from './search.ts';
import { defaultField, editField, textField, type TextField } from './text-field.ts';
import type { Theme } from './theme.ts';
import {
  barLine, barMarks, detailLines, diffHeaderText, eventRows, headerText, helpSections, paneView, statusLine, tabsLine,
  violationsText, type AppView, type BodyView, type DiffView, type ViolationTotal,
} from './view.ts';

/** What the TUI asks of the command line: the only ways it reaches outside the recording. */
export interface TuiServices {
  /** Forks `parent` at `at` with the modifications and runs `events` events; returns the new run. */
  fork(request: { parent: RunRow; at: Seq; modifications: [string, string][]; events: number }): { run: number; forkSeq: Seq };
  /** A run's status as it is now ('recording' only while its writer is alive). */
  status(run: RunRow): RunStatus;
}

export interface ControllerOptions {
  store: RecordingStore;
  run: RunRow;
  services: TuiServices;
  scheduler: Scheduler;
  theme: Theme;
  size: Size;
}

/** How often indexing progress alone redraws the screen, in milliseconds. */
const PROGRESS_REDRAW_MS = 150;
/** Before the fork starts, so that the "forking" frame is drawn first. */
const FORK_DELAY_MS = 30;

type Mode =
  | { kind: 'browse' }
  | { kind: 'help'; back: 'browse' | 'diff' | 'panel' }
  /** Browsing with a forensic pane (this.panel) in place of the state pane. */
  | { kind: 'panel' }
  | { kind: 'prompt'; prompt: ':' | '/'; field: TextField }
  | { kind: 'fork'; form: ForkForm; state: MachineState }
  | { kind: 'forking' }
  | { kind: 'picker'; runs: RunRow[]; selected: number }
  | { kind: 'diff' };

const MARKERS = {
  violation: kindMatcher('violation', ['violation']),
  exit: kindMatcher('VM exit', ['vm.exit']),
  fault: kindMatcher('fault', ['exception', 'mem.fault']),
};

export class TuiController {
  private readonly timeline: Timeline;
  private readonly index: BlockIndex;
  private readonly jobs: JobRunner;
  private nav: NavState = initialNav();
  private mode: Mode = { kind: 'browse' };
  private diff: DiffSession | undefined;
  private size: Size;
  private layout: Layout;
  private message: { text: string; problem: boolean } | undefined;
  private lastQuery: Matcher | undefined;
  private lastRedraw = 0;
  private forkPoints: Seq[] = [];
  private status: RunStatus;
  private quit = false;
  private disposed = false;
  private view!: AppView;
  private readonly names = new Map<number, string>();
  private readonly listeners = new Set<() => void>();
  private barCache = { key: '', marks: '' };
  /** Opened on the first forensic key: it needs the run's forensic index. */
  private forensics: ForensicSession | undefined;
  private panel: ForensicPanel | undefined;
  private watch: Watch | undefined;

  constructor(private readonly options: ControllerOptions) {
    this.timeline = new Timeline(options.store, options.run);
    // The index scans with timelines of its own, so its reading never evicts the screen's chunks.
    this.index = new BlockIndex(() => new Timeline(options.store, this.timeline.run));
    this.index.length = this.timeline.length;
    this.jobs = new JobRunner(options.scheduler, {
      done: () => this.index.done,
      step: (deadline, now) => { this.scanIndex(deadline, now); },
    }, (_finished, wasForeground) => {
      if (wasForeground || this.index.done || this.jobs.now() - this.lastRedraw >= PROGRESS_REDRAW_MS) this.commit();
    });
    this.status = options.services.status(options.run);
    this.size = options.size;
    this.layout = layoutFor(options.size);
    this.loadForkPoints();
    this.commit();
    this.jobs.schedule();
  }

  // ---- what React and the command line use ------------------------------------------

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  };

  readonly getSnapshot = (): AppView => this.view;

  /** Handles one key press and publishes the new view. */
  press(press: KeyPress): void {
    // Keys typed faster than they are read arrive together ("lll", "text\r"): each still counts.
    if (press.text.length > 1) {
      const presses = splitTyped(press.text, this.mode.kind === 'prompt' || this.mode.kind === 'fork');
      if (presses.length !== 1 || presses[0].text !== press.text) {
        for (const one of presses) this.press(one);
        return;
      }
    }
    const before = this.nav;
    try {
      this.dispatch(press);
      this.commit();
    } catch (error) {
      // Bad input (a damaged chunk, say) is reported on the status line, and the screen stays
      // where it could be drawn; a bug is not ours to hide.
      if (!(error instanceof InputError)) throw error;
      this.nav = before;
      this.mode = this.mode.kind === 'diff' || this.mode.kind === 'panel' ? this.mode : { kind: 'browse' };
      this.say(error.message, true);
      this.commit();
    }
  }

  /** A slice of indexing; damage stops the index there (the bar shows the rest as not indexed) and is said once. */
  private scanIndex(deadline: number, now: () => number): void {
    try {
      this.index.scan(deadline, now);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      this.index.damage = error.message;
      this.say(`indexing stopped: ${error.message}`, true);
    }
  }

  setSize(size: Size): void {
    if (size.columns === this.size.columns && size.rows === this.size.rows) return;
    this.size = size;
    this.layout = layoutFor(size);
    this.commit();
  }

  /** Re-reads a run that is still being written; returns whether it still is. */
  refreshLive(): boolean {
    const before = this.timeline.length;
    this.timeline.refresh();
    this.index.length = this.timeline.length;
    this.status = this.options.services.status(this.timeline.run);
    if (this.timeline.length !== before && this.nav.followEnd) this.nav = moveTo(this.nav, this.timeline.length, this.timeline.length);
    this.commit();
    this.jobs.schedule();
    return this.status === 'recording';
  }

  /** Stops all background work: the store may be closed after this. */
  dispose(): void {
    this.disposed = true;
    this.jobs.stop();
    this.listeners.clear();
  }

  get run(): RunRow {
    return this.timeline.run;
  }

  // ---- keys ------------------------------------------------------------------------

  private dispatch(press: KeyPress): void {
    if (this.mode.kind !== 'prompt') this.message = undefined;
    switch (this.mode.kind) {
      case 'browse': return this.browseKey(press);
      case 'help': this.mode = { kind: this.mode.back }; return;
      case 'prompt': return this.promptKey(this.mode, press);
      case 'fork': return this.forkKey(this.mode, press);
      case 'forking': return;
      case 'picker': return this.pickerKey(this.mode, press);
      case 'diff': return this.diffKey(press);
      case 'panel': return this.panelKey(press);
    }
  }

  private browseKey(press: KeyPress): void {
    const paneAction = actionFor(PANE_KEYS[this.nav.focus], press.name);
    if (paneAction) return this.paneKey(paneAction);
    if (/^[1-5]$/.test(press.name)) { this.nav = focusPane(this.nav, PANES[Number(press.name) - 1]); return; }
    const action = actionFor(BROWSE_KEYS, press.name);
    if (action) this.browseAction(action);
  }

  private moveBy(delta: number): void {
    this.nav = moveBy(this.nav, delta, this.timeline.length);
  }

  private browseAction(action: BrowseAction): void {
    const steps: Partial<Record<BrowseAction, number>> = {
      'step-back': -1, 'step-forward': 1, 'back-100': -100, 'forward-100': 100, 'back-1000': -1000, 'forward-1000': 1000,
    };
    if (steps[action] !== undefined) return this.moveBy(steps[action]);
    const length = this.timeline.length;
    switch (action) {
      case 'start': this.nav = moveTo(this.nav, 0, length); return;
      case 'end': this.nav = moveTo(this.nav, length, length); return;
      case 'jump': this.mode = { kind: 'prompt', prompt: ':', field: textField() }; return;
      // The last query is offered again: Enter repeats it, typing replaces it.
      case 'search': this.mode = { kind: 'prompt', prompt: '/', field: this.lastQuery ? defaultField(this.lastQuery.text) : textField() }; return;
      case 'search-next': return this.repeatSearch(1);
      case 'search-previous': return this.repeatSearch(-1);
      case 'violation-previous': return this.search(MARKERS.violation, -1);
      case 'violation-next': return this.search(MARKERS.violation, 1);
      case 'exit-previous': return this.search(MARKERS.exit, -1);
      case 'exit-next': return this.search(MARKERS.exit, 1);
      case 'fault-previous': return this.search(MARKERS.fault, -1);
      case 'fault-next': return this.search(MARKERS.fault, 1);
      case 'focus-next': this.nav = focusBy(this.nav, 1); return;
      case 'focus-previous': this.nav = focusBy(this.nav, -1); return;
      case 'fork': return this.openForkForm();
      case 'diff': return this.openPicker();
      case 'help': this.mode = { kind: 'help', back: this.mode.kind === 'panel' ? 'panel' : 'browse' }; return;
      case 'cancel': return this.cancelSearch();
      case 'explain': return this.explainHere();
      case 'watch': return this.setWatch();
      case 'unwatch': this.watch = undefined; this.say('watch stopped', false); return;
      case 'access-previous': return this.jumpToAccess(-1);
      case 'access-next': return this.jumpToAccess(1);
      case 'origin': return this.jumpToOrigin();
      case 'provenance': return this.openProvenance();
      case 'quit': this.quit = true; return;
      default: return;
    }
  }

  private say(text: string, problem: boolean): void {
    this.message = { text, problem };
  }

  private currentEvent(): Event | undefined {
    return this.nav.pos < this.timeline.length ? this.timeline.event(this.nav.pos) : undefined;
  }

  private paneKey(action: PaneAction): void {
    if (this.nav.focus === 'events') return this.moveBy(action === 'step-back' ? -1 : 1);
    const context: PaneContext = { state: this.timeline.stateAt(this.nav.pos), event: this.currentEvent(), names: this.names, layout: this.layout };
    if (this.nav.focus === 'machine') this.nav = machineKey(this.nav, action, context);
    if (this.nav.focus === 'memory') this.nav = memoryKey(this.nav, action, context);
    if (this.nav.focus === 'smm') this.nav = smmKey(this.nav, action, context);
    if (this.nav.focus === 'io') this.nav = ioKey(this.nav, action, context);
  }

  // ---- searches and marker jumps -----------------------------------------------------

  private search(matcher: Matcher, direction: 1 | -1): void {
    const origin = this.nav.pos;
    const where = `${direction > 0 ? 'after' : 'before'} seq ${origin}`;
    if (origin + direction < 0 || origin + direction >= this.timeline.length) { this.say(`no ${matcher.text} ${where}`, false); return; }
    const job = new SearchJob(this.timeline, this.index, matcher, origin + direction, direction, this.names);
    this.jobs.start({
      job,
      label: `searching ${matcher.text}`,
      progress: () => job.progress,
      finish: () => {
        if (job.found === undefined) { this.say(`no ${matcher.text} ${where}`, false); return; }
        this.nav = moveTo(this.nav, job.found, this.timeline.length);
        this.say(`${matcher.text} at seq ${job.found}`, false);
      },
    });
  }

  private repeatSearch(direction: 1 | -1): void {
    if (this.lastQuery === undefined) { this.say('no search yet: / starts one', false); return; }
    this.search(this.lastQuery, direction);
  }

  private cancelSearch(): void {
    const dropped = this.jobs.cancel();
    if (dropped) this.say(`${dropped.label}: stopped`, false);
  }

  // ---- prompts: `:` and `/` ----------------------------------------------------------

  private promptKey(mode: Extract<Mode, { kind: 'prompt' }>, press: KeyPress): void {
    if (press.name === 'esc') { this.mode = { kind: 'browse' }; return; }
    if (press.name === 'enter') {
      this.mode = { kind: 'browse' };
      this.message = undefined;
      if (mode.prompt === ':') this.jumpTo(mode.field.text.trim()); else this.startQuery(mode.field.text);
      return;
    }
    const field = editField(mode.field, press);
    if (field) this.mode = { ...mode, field };
  }

  private jumpTo(text: string): void {
    const length = this.timeline.length;
    if (text === 'end') { this.nav = moveTo(this.nav, length, length); return; }
    const match = /^([+-]?)(\d+)$/.exec(text);
    if (!match) { this.say(`:${text}: give a seq (0..${length}), +N, -N or end`, true); return; }
    const n = Number(match[2]);
    const target = match[1] === '+' ? this.nav.pos + n : match[1] === '-' ? this.nav.pos - n : n;
    if (match[1] === '' && n > length) this.say(`seq ${n} is past the end (${length}); went to the end`, false);
    this.nav = moveTo(this.nav, target, length);
  }

  private startQuery(text: string): void {
    this.refreshNames();
    const matcher = parseQuery(text, this.names);
    if (typeof matcher === 'string') { this.say(`search: ${matcher}`, true); return; }
    this.lastQuery = matcher;
    this.search(matcher, 1);
  }

  // ---- forensics: explain, watch, origin, provenance ------------------------------------

  /** The run's forensic queries; an InputError naming the fix when the recording has no index for the run. */
  private forensicSession(): ForensicSession {
    try {
      this.forensics ??= new ForensicSession(this.options.store, this.timeline.run);
    } catch (error) {
      // The TUI reads the recording and never writes it: the user builds the index, with the command first so a narrow screen keeps it.
      if (!(error instanceof InputError) || error.code !== 'no-index') throw error;
      throw new InputError('no-index', `run ${this.run.id} has no forensic index (x w o p need one): chronovisor index ${this.options.store.path}`);
    }
    return this.forensics;
  }

  private openPanel(panel: ForensicPanel): void {
    this.panel = panel;
    this.mode = { kind: 'panel' };
  }

  private panelKey(press: KeyPress): void {
    const action = actionFor(PANEL_KEYS, press.name);
    if (action === undefined) return this.browseKey(press);
    this.panelAction(this.panel!, action);
  }

  private panelAction(panel: ForensicPanel, action: PanelAction): void {
    switch (action) {
      case 'select-previous': this.panel = movePanel(panel, -1); return;
      case 'select-next': this.panel = movePanel(panel, 1); return;
      case 'close':
        // Esc stops a query first (a provenance asked for from the pane), then closes the pane.
        if (this.jobs.current) return this.cancelSearch();
        this.panel = undefined;
        this.mode = { kind: 'browse' };
        return;
      case 'go': {
        const seq = selectedSeq(panel);
        if (seq === undefined) return;
        this.nav = moveTo(this.nav, seq, this.timeline.length);
        this.say(`at seq ${seq}`, false);
      }
    }
  }

  private explainHere(): void {
    const event = this.currentEvent();
    if (event?.kind !== 'violation') {
      this.say(`x explains a violation; seq ${this.nav.pos} is ${event === undefined ? 'the end of the run' : `a ${event.kind}`}: [ and ] go to one`, false);
      return;
    }
    const seq = this.nav.pos;
    this.runQuery(`explaining seq ${seq}`, explainOf(this.forensicSession(), seq), (x) => {
      this.openPanel(explainPanel(x));
      this.say(`violation at seq ${seq} explained: Enter jumps to the selected seq`, false);
    });
  }

  /** Runs a forensic query as the foreground job: progress on the tabs line, Esc stops it. */
  private runQuery<T>(label: string, steps: QuerySteps<T>, done: (value: T) => void): void {
    const job = new QueryJob(steps);
    this.jobs.start({
      job,
      label,
      progress: () => job.progress,
      finish: () => {
        // The user may have gone on to a form or the diff meanwhile: the answer is for browsing only.
        if (this.mode.kind !== 'browse' && this.mode.kind !== 'panel') return;
        if (job.problem !== undefined) this.say(`${label}: ${job.problem}`, true);
        else done(job.answer!.value);
      },
    });
  }

  /** The memory pane's bytes at the position, as an address. */
  private cursor(): CursorAddress {
    const state = this.timeline.stateAt(this.nav.pos);
    const address = cursorAddress(this.nav, state, this.currentEvent(), this.layout, this.names);
    if (address === undefined) throw new InputError('argument', 'the memory pane shows no guest frame here: pick one in the memory pane (3)');
    return address;
  }

  private setWatch(): void {
    const session = this.forensicSession();
    const address = this.cursor();
    const resolved = session.resolve(address.address, this.nav.pos, address.label);
    if (resolved.kind !== 'memory') return;
    this.watch = { label: address.label, ranges: resolved.ranges };
    this.say(`watching ${watchText(this.watch)}: ( ) previous/next access, W stops`, false);
  }

  private jumpToAccess(direction: 1 | -1): void {
    if (this.watch === undefined) { this.say('no watch: w watches the memory pane\'s bytes', false); return; }
    const row = watchAccess(this.forensicSession(), this.watch, this.nav.pos, direction);
    if (row === undefined) { this.say(`no access to ${this.watch.label} ${direction > 0 ? 'after' : 'before'} seq ${this.nav.pos}`, false); return; }
    this.nav = moveTo(this.nav, row.seq, this.timeline.length);
    this.say(`${row.access} ${row.bytes} at seq ${row.seq}: ${row.actor}, ${row.what}`, false);
  }

  private jumpToOrigin(): void {
    const address = this.cursor();
    const at = this.nav.pos;
    this.runQuery(`tracing ${address.label}`, provenanceOf(this.forensicSession(), address, at), (result) => {
      const origins = eventOrigins(result);
      if (origins.length === 0) { this.say(`${address.label} at seq ${at}: never written since the recording began (no origin event)`, false); return; }
      const hop = origins[0];
      this.nav = moveTo(this.nav, hop.seq, this.timeline.length);
      const more = origins.length > 1 ? ` (1 of ${origins.length} origins: p lists them)` : '';
      this.say(`origin of ${address.label}: seq ${hop.seq} ${hop.actor}: ${hop.origin}${more}`, false);
    });
  }

  private openProvenance(): void {
    const address = this.cursor();
    const at = this.nav.pos;
    this.runQuery(`tracing ${address.label}`, provenanceOf(this.forensicSession(), address, at), (result) => {
      this.openPanel(provenancePanel(result, address.label, at));
    });
  }

  // ---- fork ----------------------------------------------------------------------

  private openForkForm(): void {
    const boundary = this.timeline.stepBoundaryAtOrBefore(this.nav.pos);
    const state = this.timeline.stateAt(boundary);
    this.mode = { kind: 'fork', form: createForkForm(state, this.nav.pos, boundary), state };
  }

  private forkKey(mode: Extract<Mode, { kind: 'fork' }>, press: KeyPress): void {
    const outcome = forkFormKey(mode.form, press);
    if (outcome.kind === 'cancel') { this.mode = { kind: 'browse' }; return; }
    if (outcome.kind === 'edit') {
      this.mode = { ...mode, form: { ...outcome.form, problem: formProblem(outcome.form, mode.state) } };
      return;
    }
    if (outcome.kind !== 'submit') return;
    const [key, value] = formModification(mode.form);
    const events = Number(mode.form.events.text);
    this.mode = { kind: 'forking' };
    this.say(`forking run ${this.run.id} at seq ${mode.form.boundary} with ${key}=${value}, ${events} events...`, false);
    // Deferred so that the frame saying "forking" is on screen while the fork runs.
    this.options.scheduler.after(FORK_DELAY_MS, () => this.runFork(mode.form.boundary, [[key, value]], events));
  }

  private runFork(at: Seq, modifications: [string, string][], events: number): void {
    if (this.disposed || this.mode.kind !== 'forking') return;
    try {
      const result = this.options.services.fork({ parent: this.run, at, modifications, events });
      this.loadForkPoints();
      this.openDiff(this.options.store.run(result.run));
      this.say(`forked: run ${result.run} from seq ${result.forkSeq}; n/N divergences, Esc back`, false);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      this.mode = { kind: 'browse' };
      this.say(`fork refused: ${error.message}`, true);
    }
    this.commit();
  }

  private loadForkPoints(): void {
    const run = this.timeline.run;
    const children = this.options.store.runs().filter((r) => r.parentRun === run.id && r.forkSeq !== null).map((r) => r.forkSeq!);
    this.forkPoints = run.forkSeq === null ? children : [run.forkSeq, ...children];
  }

  // ---- diff ----------------------------------------------------------------------

  private openPicker(): void {
    // Runs of other formats cannot be read, so they cannot be compared.
    const runs = this.options.store.runs().filter((r) => r.id !== this.run.id && runFormatProblem(r) === undefined);
    if (runs.length === 0) { this.say('this recording has no other run: f forks one to compare with', false); return; }
    this.mode = { kind: 'picker', runs, selected: 0 };
  }

  private pickerKey(mode: Extract<Mode, { kind: 'picker' }>, press: KeyPress): void {
    if (press.name === 'esc' || press.name === 'q') { this.mode = { kind: 'browse' }; return; }
    if (press.name === 'up' || press.name === 'k') this.mode = { ...mode, selected: Math.max(0, mode.selected - 1) };
    if (press.name === 'down' || press.name === 'j') this.mode = { ...mode, selected: Math.min(mode.runs.length - 1, mode.selected + 1) };
    if (press.name === 'enter') this.openDiff(mode.runs[mode.selected]);
  }

  private openDiff(other: RunRow): void {
    const b = new Timeline(this.options.store, { ...other, status: this.options.services.status(other) });
    this.diff = new DiffSession(this.timeline, b);
    this.mode = { kind: 'diff' };
    const at = this.diff.divergedAt;
    this.say(at === undefined ? 'the runs are identical' : `first divergence at seq ${at}`, false);
  }

  private diffKey(press: KeyPress): void {
    const action = actionFor(DIFF_KEYS, press.name);
    if (action) this.diffAction(this.diff!, action);
  }

  private diffAction(session: DiffSession, action: DiffAction): void {
    const steps: Partial<Record<DiffAction, number>> = {
      'step-back': -1, 'step-forward': 1, 'back-100': -100, 'forward-100': 100, 'back-1000': -1000, 'forward-1000': 1000,
    };
    if (steps[action] !== undefined) return this.diffCursor(session, session.cursor + steps[action]);
    switch (action) {
      case 'start': return this.diffCursor(session, session.divergedAt ?? 0);
      case 'end': return this.diffCursor(session, session.length);
      case 'divergence-next': return this.findDivergence(session, 1);
      case 'divergence-previous': return this.findDivergence(session, -1);
      case 'scroll-up': session.scroll = Math.max(0, session.scroll - 1); return;
      case 'scroll-down': session.scroll = Math.min(Math.max(0, session.stateDifferences().length - 1), session.scroll + 1); return;
      case 'help': this.mode = { kind: 'help', back: 'diff' }; return;
      case 'close': this.jobs.cancel(); this.diff = undefined; this.mode = { kind: 'browse' }; return;
      default: return;
    }
  }

  private diffCursor(session: DiffSession, seq: Seq): void {
    session.cursor = Math.max(0, Math.min(session.length, seq));
    session.scroll = 0;
  }

  private findDivergence(session: DiffSession, direction: 1 | -1): void {
    const job = new DivergenceJob(session, direction);
    const from = session.cursor;
    this.jobs.start({
      job,
      label: 'looking for a divergence',
      progress: () => Math.abs(job.cursor - from) / Math.max(1, direction > 0 ? session.length - from : from),
      finish: () => {
        if (job.found === undefined) {
          this.say(direction > 0 ? `no divergence after seq ${from}: the runs differ throughout, or agree to the end` : 'no divergence before this one', false);
          return;
        }
        this.diffCursor(session, job.found);
        this.say(`divergence at seq ${job.found}`, false);
      },
    });
  }

  // ---- publishing the view -----------------------------------------------------------

  private refreshNames(): void {
    for (const [id, name] of this.index.names) this.names.set(id, name);
  }

  private commit(): void {
    this.refreshNames();
    this.lastRedraw = this.jobs.now();
    this.view = this.buildView();
    for (const listener of this.listeners) listener();
  }

  private showsDiff(): boolean {
    return this.diff !== undefined && (this.mode.kind === 'diff' || (this.mode.kind === 'help' && this.mode.back === 'diff'));
  }

  private buildView(): AppView {
    const { theme } = this.options;
    const { width } = this.layout;
    const length = this.timeline.length;
    const inDiff = this.showsDiff();
    const pos = inDiff ? this.diff!.cursor : this.nav.pos;
    const state = this.timeline.stateAt(Math.min(pos, length));
    for (const [id, name] of domainNames(state)) this.names.set(id, name);
    const mode = this.mode;
    return {
      theme,
      layout: this.layout,
      header: inDiff ? diffHeaderText(this.diff!, width) : headerText(this.run, this.status, pos, length, state, width, this.violationsAt(pos, state)),
      bar: barLine(this.marks(), length, pos, theme),
      tabs: tabsLine(this.nav, this.progressNote(), width),
      body: this.bodyView(state),
      status: statusLine({ mode: mode.kind, prompt: mode.kind === 'prompt' ? mode : undefined, message: this.message }, width, theme),
      quit: this.quit,
    };
  }

  /** The header's violation count: the run's summary has the total; a run without one (live, cut short) counts as it is indexed. */
  private violationsAt(pos: Seq, state: MachineState): string {
    const summary = JSON.parse(this.run.summary) as Partial<RunSummary>;
    const total: ViolationTotal = summary.violations !== undefined && this.status !== 'recording'
      ? { count: violationCount(summary as RunSummary), complete: true }
      : { count: this.index.violations, complete: this.index.done && this.index.damage === undefined };
    return violationsText(state.violations, this.currentEvent()?.kind === 'violation', total);
  }

  /** The bar's marks, recomputed only when the index, the run or the width changed. */
  private marks(): string {
    const columns = this.layout.width - 2;
    const key = `${this.index.scannedTo}:${this.timeline.length}:${columns}:${this.forkPoints.join(',')}`;
    if (this.barCache.key !== key) this.barCache = { key, marks: barMarks(this.index, this.timeline.length, this.forkPoints, columns) };
    return this.barCache.marks;
  }

  private progressNote(): string {
    const job = this.jobs.current;
    if (job) return `${job.label} ${Math.floor(job.progress() * 100)}% (Esc stops)`;
    if (this.index.damage !== undefined) return `indexed to seq ${this.index.scannedTo}: the run is damaged there`;
    if (!this.index.done) return `indexing ${Math.floor((this.index.scannedTo / Math.max(1, this.timeline.length)) * 100)}%`;
    return this.watch === undefined ? '' : `watch ${this.watch.label}`;
  }

  private bodyView(state: MachineState): BodyView {
    const mode = this.mode;
    switch (mode.kind) {
      case 'help': return { kind: 'help', sections: helpSections(this.nav.focus, mode.back === 'diff', mode.back === 'panel') };
      case 'fork': return { kind: 'fork', form: mode.form, run: this.run };
      case 'picker': return { kind: 'picker', runs: mode.runs, selected: mode.selected };
      case 'diff': return { kind: 'diff', diff: this.diffView(this.diff!) };
      default: return this.browseView(state);
    }
  }

  private browseView(state: MachineState): BodyView {
    const { pos } = this.nav;
    const layout = this.layout;
    const event = this.currentEvent();
    return {
      kind: 'browse',
      rows: eventRows(this.timeline, pos, layout.eventRows, this.names),
      detail: detailLines(event, state, pos, this.status, this.names, layout.width, layout.detailRows),
      pane: this.mode.kind === 'panel' && this.panel !== undefined
        ? { id: 'forensic', lines: panelLines(this.panel, layout.paneRows, layout.width, this.options.theme) }
        : paneView(this.nav.shown, this.nav, state, event, this.names, layout),
    };
  }

  private diffView(session: DiffSession): DiffView {
    // Each differing seq takes two lines (A and B): reading this many rows covers the worst case.
    const rows = this.layout.eventRows + this.layout.detailRows;
    return {
      a: this.run, b: session.b.run, divergedAt: session.divergedAt, cursor: session.cursor,
      rows: session.rows(Math.max(0, session.cursor - 2), rows), names: this.names,
      differences: session.stateDifferences(), scroll: session.scroll,
    };
  }
}
