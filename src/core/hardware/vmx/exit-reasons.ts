/**
 * VMX basic exit reasons (SDM Vol. 3, Appendix C) and exception vectors, by name. The
 * numbers live with the CPU (src/core/cpu/outcomes.ts); this adds the names the log prints.
 */
import { ExitReason, Vector } from '../cpu/outcomes.ts';

export { ExitReason, Vector };

const NAMES = new Map<number, string>(Object.entries(ExitReason).map(([name, number]) => [number, name]));

export function exitReasonName(reason: number): string {
  return NAMES.get(reason) ?? `EXIT_${reason}`;
}
