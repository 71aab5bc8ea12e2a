/**
 * `export jsonl` and `export perfetto`: a run's events for other tools, read once and written
 * as they are read (memory stays flat over any length of run).
 */
import { basename } from 'node:path';
import { InputError } from '../events/errors.ts';
import { annotatedEvents, eventLogJson } from '../replay/format.ts';
import { TraceBuilder } from '../replay/perfetto.ts';
import { Timeline } from '../replay/timeline.ts';
import { note, openForReading, resolveRun } from './context.ts';
import { checkOutput, withOutput, type Output } from './output.ts';
import { keepHeapNearLive, stopYoungGenerationGrowing } from './heap.ts';

export interface ExportOptions {
  run?: string;
  out?: string;
  force?: boolean;
}

type Writer = (timeline: Timeline, output: Output) => number;

/** Checks --out, opens the recording, writes with `write`, says what was written on stderr. */
function exportRun(format: string, extension: string, what: string, db: string, options: ExportOptions, write: Writer): number {
  if (options.out === undefined) throw new InputError('argument', `export ${format}: --out FILE is required, for example --out ${basename(db)}.${extension} (or --out - for standard output)`);
  const target = checkOutput(options.out, db, options.force === true, `${basename(db)}.${extension}`);
  keepHeapNearLive();
  stopYoungGenerationGrowing();
  const store = openForReading(db);
  try {
    const run = resolveRun(store, options.run);
    const count = withOutput(target, options.force === true, (output) => write(new Timeline(store, run), output));
    note(`wrote ${count} ${what} to ${target.label} (run ${run.id} ${run.name}, ${run.eventCount} events)`);
    return 0;
  } finally {
    store.close();
  }
}

/** One event a line, the objects `log --json` prints. */
export function exportJsonlCommand(db: string, options: ExportOptions): number {
  return exportRun('jsonl', 'jsonl', 'events', db, options, (timeline, output) => {
    let count = 0;
    for (const annotated of annotatedEvents(timeline, 0, timeline.length)) {
      output.write(`${JSON.stringify(eventLogJson(annotated))}\n`);
      count++;
    }
    return count;
  });
}

/** Trace Event Format JSON, which the Perfetto UI and chrome://tracing open. */
export function exportPerfettoCommand(db: string, options: ExportOptions): number {
  return exportRun('perfetto', 'json', 'trace events', db, options, (timeline, output) => {
    const run = timeline.run;
    output.write(`{"displayTimeUnit":"ms","otherData":${JSON.stringify({ run: run.id, name: run.name, clock: 'seq: event N is at N microseconds' })},"traceEvents":[\n`);
    let count = 0;
    for (const event of new TraceBuilder(timeline).events()) output.write(`${count++ === 0 ? '' : ',\n'}${JSON.stringify(event)}`);
    output.write('\n]}\n');
    return count;
  });
}
