/**
 * The heap of a command that runs long but keeps little. After a full collection V8 lets
 * the old generation grow by a factor it picks from its own speed and the program's (up to
 * 4x what survived); the TUI keeps ~40 MB but makes garbage with every key, so its heap
 * grew to several times that. Measured on 10M events of the long workload: TUI peak RSS
 * 370-376 MB by default, 258-281 MB growing by what survived (100%), with no key over 50 ms
 * (npm run bench -- tui, 6 runs); 20-70% gave 239-258 MB but keys up to 56 ms, as full
 * collections came more often. `verify` with 2 workers: 642 -> 560 MB in the same time
 * (the flag applies to the whole process, worker threads too). `export` and `diff` read a
 * whole run and keep ~15 MB: their old generation grew to ~70 MB of garbage between full
 * collections, and their peak varied with where the last one fell. Measured on the long
 * workload, no slower: export jsonl of 10M events 126-171 -> 138 MB, of 100M 144 and 175 ->
 * 157 MB; diff of two runs on 10M events 181-183 -> 147 MB, on 100M 189 -> 151 MB.
 */
import { setFlagsFromString } from 'node:v8';

const HEAP_GROWING_PERCENT = 100;

export function keepHeapNearLive(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/**
 * For an export, which streams one event at a time: the young generation stops growing. V8
 * doubles it (up to 32 MB of new space) each time as many bytes have survived its
 * collections since the last doubling as it holds, a sum that only grows, so any long
 * enough run reaches the largest size: a 100M export went from ~133 MB to swings of
 * 135-154 MB after ~12M events, where 10M had ended, so its peak was not flat in the
 * length of the run. V8 reads the young generation's limit only when a heap is made, but
 * the growth factor at each doubling, so a factor of 1 stops it at the size it has here
 * (16 MB: loading the modules grew it). Measured on the long workload: peak RSS of export
 * jsonl at 10M 134-136 -> 112-121 MB, at 100M 157 -> 127 MB (752 s against 754-758 s).
 * Not for `diff`, which holds two runs' chunks at once and is already flat.
 */
export function stopYoungGenerationGrowing(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
