/**
 * Guest memory by linear address, as Xen's copy_from_guest reads it (through the guest's own
 * page tables and the p2m, decrypted with the owner's key), or as the vCPU fetches it (its TLB
 * first). A pure function of the state: nothing is emitted, so a debugger may call it too.
 */
import { ExitReason } from '../../hardware/cpu/outcomes.ts';
import { CR0_PG, guestWalk, type WalkPort } from '../../hardware/paging/guest-walk.ts';
import { PAGE_SIZE } from '../config.ts';
import type { HostState } from '../state.ts';
import { ownerPlaintext } from './smm.ts';

function gpaPort(state: HostState, dom: number): WalkPort {
  return {
    read32(gpa) {
      const mfn = state.domains.get(dom)?.p2m.get(Math.floor(gpa / PAGE_SIZE));
      if (mfn === undefined) return { kind: 'exit', reason: ExitReason.EPT_VIOLATION, qualification: 0, gla: null, gpa };
      return Buffer.from(ownerPlaintext(state, mfn, gpa % PAGE_SIZE, 4)).readUInt32LE(0);
    },
    write32: () => undefined,
  };
}

/**
 * Bytes at a guest-linear address, or undefined where the guest has nothing mapped: through
 * the guest's page tables (as Xen's copy_from_guest reads), or with `asFetched` through the
 * vCPU's TLB first, as the processor does. The two differ after the guest rewrites a page
 * table entry without INVLPG: the TLB may keep the old translation, on hardware too.
 */
export function readGuestLinear(state: HostState, dom: number, vcpu: number, linear: number, length: number, asFetched = false): Uint8Array | undefined {
  const x86 = state.domains.get(dom)?.vcpus[vcpu]?.x86;
  if (!x86) return undefined;
  const out = new Uint8Array(length);
  for (let i = 0; i < length;) {
    const address = (linear + i) >>> 0;
    const offset = address % PAGE_SIZE;
    const cached = asFetched ? x86.tlb.get(address >>> 12) : undefined;
    let mfn = cached?.mfn;
    if (mfn === undefined) {
      let gpa = address;
      if ((x86.cpu.cr0 & CR0_PG) !== 0) {
        const walk = guestWalk(gpaPort(state, dom), x86.cpu, address, false);
        if ('kind' in walk) return i === 0 ? undefined : out.subarray(0, i);
        gpa = walk.gpa;
      }
      mfn = state.domains.get(dom)!.p2m.get(Math.floor(gpa / PAGE_SIZE));
      if (mfn === undefined) return i === 0 ? undefined : out.subarray(0, i);
    }
    const n = Math.min(length - i, PAGE_SIZE - offset);
    out.set(ownerPlaintext(state, mfn, offset, n), i);
    i += n;
  }
  return out;
}
