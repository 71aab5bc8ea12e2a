/**
 * `export pcap`: the frames of a run as a classic libpcap file, for tcpdump and Wireshark.
 *
 * Frames are the `net.frame` events at the chosen points of the network (default: the
 * switch and the wire, i.e. what crossed the physical network). Each record's timestamp is
 * the machine's virtual clock at the frame: `state.tick` at the event's seq (what
 * `state --at SEQ` and the TUI header show), one tick written as one microsecond. Where the
 * file goes (a file, a FIFO or device, standard output) is output.ts's business.
 */
import { basename } from 'node:path';
import { InputError } from '../events/errors.ts';
import type { Seq } from '../events/schema.ts';
import { evolve } from '../core/machine/evolve.ts';
import type { MachineState } from '../core/machine/state.ts';
import { Timeline } from '../replay/timeline.ts';
import { note, openForReading, resolveRun } from './context.ts';
import { checkOutput, withOutput, type Output } from './output.ts';
import { keepHeapNearLive, stopYoungGenerationGrowing } from './heap.ts';

export interface ExportPcapOptions {
  run?: string;
  out?: string;
  /** Comma list of points, or 'all'. */
  at?: string;
  dropped?: boolean;
  force?: boolean;
}

// ---- the libpcap format ------------------------------------------------------------------

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_SNAPLEN = 65535;
export const LINKTYPE_ETHERNET = 1;
const PCAP_HEADER_BYTES = 24;
const PCAP_RECORD_HEADER_BYTES = 16;

/** The global header: magic, version 2.4, GMT offset 0, accuracy 0, snaplen, link type. */
export function pcapFileHeader(): Buffer {
  const header = Buffer.alloc(PCAP_HEADER_BYTES);
  header.writeUInt32LE(PCAP_MAGIC, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(PCAP_SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  return header;
}

/** One record: timestamp (microseconds split in seconds and the rest), lengths, the bytes. */
export function pcapRecord(micros: number, frame: Uint8Array): Buffer {
  const captured = Math.min(frame.length, PCAP_SNAPLEN);
  const record = Buffer.alloc(PCAP_RECORD_HEADER_BYTES + captured);
  record.writeUInt32LE(Math.floor(micros / 1_000_000) >>> 0, 0);
  record.writeUInt32LE(micros % 1_000_000, 4);
  record.writeUInt32LE(captured, 8);
  record.writeUInt32LE(frame.length, 12);
  record.set(frame.subarray(0, captured), PCAP_RECORD_HEADER_BYTES);
  return record;
}

// ---- which frames ------------------------------------------------------------------------

/** What crossed the physical network: the switch and both directions of the wire. */
export const DEFAULT_POINTS: readonly string[] = ['switch', 'wire.in', 'wire.out'];
const POINT_PATTERN = /^(vf[1-9]\d*\.(tx|rx)|switch|wire\.(in|out)|siom\.(tx|rx)|netback\.(tx|rx))$/;
const POINT_NAMES = 'vfN.tx, vfN.rx, switch, wire.in, wire.out, siom.tx, siom.rx, netback.tx, netback.rx';

/** The points asked for: a list (in the order given), or undefined for every point. */
export function parsePoints(text: string | undefined): string[] | undefined {
  if (text === undefined) return [...DEFAULT_POINTS];
  if (text.trim() === 'all') return undefined;
  const points = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (points.length === 0) throw new InputError('argument', `--at ${JSON.stringify(text)}: expected a comma list of points (${POINT_NAMES}) or all`);
  for (const p of points) {
    if (!POINT_PATTERN.test(p)) throw new InputError('argument', `--at ${p}: no such point; points: ${POINT_NAMES}, or all`);
  }
  return [...new Set(points)];
}

// ---- the machine's clock at a seq --------------------------------------------------------

/**
 * The tick at ascending seqs, cheaply: one private state rolled forward, restarted from a
 * checkpoint whenever one lies between it and the next seq asked for.
 */
export class TickClock {
  private state: MachineState | undefined;
  private seq: Seq = 0;
  private readonly checkpoints: Seq[];
  /** Index of the last checkpoint at or before the seqs asked so far. */
  private next = 0;

  constructor(private readonly timeline: Timeline) {
    this.checkpoints = timeline.checkpointSeqs();
  }

  /** The tick in the state after events [0, seq); seqs must not go backwards. */
  tickAt(seq: Seq): number {
    let passedCheckpoint = false;
    while (this.next < this.checkpoints.length && this.checkpoints[this.next] <= seq) {
      passedCheckpoint ||= this.checkpoints[this.next] > this.seq;
      this.next++;
    }
    if (this.state === undefined || passedCheckpoint || seq < this.seq) {
      const loaded = this.timeline.loadCheckpoint(seq, { lazyPages: true });
      this.state = loaded.state;
      this.seq = loaded.seq;
    }
    for (const [, event] of this.timeline.iterate(this.seq, seq)) evolve(this.state, event, true);
    this.seq = seq;
    return this.state.tick;
  }
}

// ---- the command -------------------------------------------------------------------------

interface PointTally {
  written: number;
  /** Dropped frames written (--dropped) or left out. */
  droppedWritten: number;
  droppedLeftOut: number;
}

type Tally = Map<string, PointTally>;

function tallyFor(tally: Tally, at: string): PointTally {
  let point = tally.get(at);
  if (point === undefined) tally.set(at, point = { written: 0, droppedWritten: 0, droppedLeftOut: 0 });
  return point;
}

/** Writes the selected frames of the run to `file`; returns what was written, by point. */
function writeFrames(timeline: Timeline, file: Output, points: string[] | undefined, withDropped: boolean): Tally {
  const wanted = points === undefined ? undefined : new Set(points);
  const tally: Tally = new Map();
  for (const p of points ?? []) tallyFor(tally, p);
  const clock = new TickClock(timeline);
  file.write(pcapFileHeader());
  for (const [seq, event] of timeline.iterate()) {
    if (event.kind !== 'net.frame' || (wanted !== undefined && !wanted.has(event.at))) continue;
    const point = tallyFor(tally, event.at);
    const dropped = event.verdict !== 'ok';
    if (dropped && !withDropped) { point.droppedLeftOut++; continue; }
    file.write(pcapRecord(clock.tickAt(seq), event.frame));
    point.written++;
    if (dropped) point.droppedWritten++;
  }
  return tally;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What was written, on stderr: the data may be going to stdout. */
function report(tally: Tally, label: string, runLabel: string): void {
  const points = [...tally.values()];
  const written = points.reduce((n, p) => n + p.written, 0);
  const leftOut = points.reduce((n, p) => n + p.droppedLeftOut, 0);
  note(`wrote ${plural(written, 'frame')} to ${label} (run ${runLabel}; timestamps: the machine's tick, 1 tick = 1 microsecond)`);
  for (const [at, p] of tally) {
    const dropped = p.droppedWritten > 0 ? ` (${p.droppedWritten} dropped)` : p.droppedLeftOut > 0 ? ` (${p.droppedLeftOut} dropped left out)` : '';
    note(`  ${at.padEnd(12)} ${String(p.written).padStart(6)}${dropped}`);
  }
  if (leftOut > 0) note(`left out ${plural(leftOut, 'dropped frame')}; add --dropped to include them`);
}

export function exportPcapCommand(db: string, options: ExportPcapOptions): number {
  if (options.out === undefined) throw new InputError('argument', 'export pcap: --out FILE is required, for example --out frames.pcap (or --out - for standard output)');
  const points = parsePoints(options.at);
  const target = checkOutput(options.out, db, options.force === true, `${basename(db)}.pcap`);
  keepHeapNearLive();
  stopYoungGenerationGrowing();
  const store = openForReading(db);
  try {
    const run = resolveRun(store, options.run);
    const tally = withOutput(target, options.force === true, (file) => writeFrames(new Timeline(store, run), file, points, options.dropped === true));
    report(tally, target.label, `${run.id} ${run.name}`);
    return 0;
  } finally {
    store.close();
  }
}
