/**
 * Looking into a machine state from outside, as a debugger does: the instruction at EIP as
 * the vCPU fetches it. A pure function of the state; nothing is emitted.
 */
import { decode, formatInstruction } from '../hardware/x86/index.ts';
import { readGuestLinear } from '../hypervisor/memory/copy-from-guest.ts';
import type { HostState } from '../hypervisor/state.ts';

/** The instruction at `eip` in NASM syntax, or a note saying why there is none. */
export function disassembleAt(state: HostState, dom: number, vcpu: number, eip: number): string {
  const bytes = readGuestLinear(state, dom, vcpu, eip, 15, true);
  if (bytes === undefined) return '(not mapped)';
  const decoded = decode(bytes, 0);
  return decoded.kind === 'instruction' ? formatInstruction(decoded, eip) : `(${decoded.kind}: ${Buffer.from(bytes.subarray(0, Math.max(1, decoded.length))).toString('hex')})`;
}
