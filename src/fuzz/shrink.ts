/**
 * Shrinking for cases that fast-check did not generate (the guided mode's mutants): delta
 * debugging over the action list (drop halves, then quarters, ... then single actions),
 * then over each guest action's operations, then toward the simplest machine shape. A
 * candidate is kept when it still breaks the same invariant (same signature class), so the
 * shrunk case shows the bug that was found, not another one met on the way.
 */
import type { CaseShape } from './case.ts';
import type { Action } from './actions.ts';
import type { Candidate } from './mutate.ts';

/** At most this many cases are run to shrink one finding. */
export const SHRINK_RUNS_MAX = 400;

/** Runs a candidate: the finding it makes (undefined: none) and the actions that ran. */
export type Trial = (candidate: Candidate) => { finding: string | undefined; applied: Action[] };

/** The invariant (or model check) a finding names: what a shrink step must keep. */
export const findingClass = (finding: string): string => (finding.startsWith('dead domain') ? 'dead domain' : finding.split(':')[0]);

export function shrinkCase(start: Candidate, finding: string, trial: Trial): { candidate: Candidate; finding: string; runs: number } {
  const wanted = findingClass(finding);
  let best = start;
  let bestFinding = finding;
  let runs = 0;
  const attempt = (candidate: Candidate): boolean => {
    if (runs >= SHRINK_RUNS_MAX) return false;
    runs++;
    const r = trial(candidate);
    if (r.finding === undefined || findingClass(r.finding) !== wanted) return false;
    // What ran, not what was asked: the model skips actions it finds impossible.
    best = { shape: candidate.shape, actions: r.applied };
    bestFinding = r.finding;
    return true;
  };
  for (let size = Math.ceil(best.actions.length / 2); size >= 1; size = Math.floor(size / 2)) {
    for (let i = 0; i < best.actions.length;) {
      if (!attempt({ shape: best.shape, actions: [...best.actions.slice(0, i), ...best.actions.slice(i + size)] })) i += size;
    }
  }
  shrinkGuestOps(best, attempt, () => best);
  for (const step of SIMPLER_SHAPE) {
    const shape = { ...best.shape, ...step };
    if (JSON.stringify(shape) !== JSON.stringify(best.shape)) attempt({ shape, actions: best.actions });
  }
  return { candidate: best, finding: bestFinding, runs };
}

/** Drops single operations of guest actions while the finding stays. */
function shrinkGuestOps(start: Candidate, attempt: (c: Candidate) => boolean, current: () => Candidate): void {
  for (let a = 0; a < start.actions.length; a++) {
    for (let op = 0; ; ) {
      const { shape, actions } = current();
      const action = actions[a];
      if (action === undefined || action.kind !== 'guest' || op >= action.ops.length || action.ops.length === 1) break;
      const smaller: Action = { ...action, ops: action.ops.filter((_, j) => j !== op) };
      if (!attempt({ shape, actions: actions.map((x, j) => (j === a ? smaller : x)) })) op++;
    }
  }
}

/** One pCPU, quantum 1, EPT, machine seed 1: each tried in turn, each kept if the finding stays. */
const SIMPLER_SHAPE: Partial<CaseShape>[] = [{ pcpus: 1 }, { quantum: 1 }, { paging: 'ept' }, { seed: 1 }];
