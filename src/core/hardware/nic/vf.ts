/**
 * A virtual function of the SR-IOV NIC as the device holds it: the port settings the PF
 * driver forced on it (MAC, port VLAN, anti-spoofing) and its BAR0 register file.
 */
import { assert } from '../../../events/errors.ts';
import type { DomainId } from '../../../events/schema.ts';

export interface NicVf {
  /** VF number, 1-based as SR-IOV counts. */
  vf: number;
  /** Routing id on the host bus (the source id of its DMA). */
  bdf: number;
  /** The domain it is assigned to (-1: none). */
  dom: DomainId;
  /** The MAC the PF forced on it, and its port VLAN (0: untagged). */
  mac: string;
  vlan: number;
  /** Per-VF MAC anti-spoofing (IFLA_VF_SPOOFCHK). */
  spoofcheck: boolean;
  /** BAR0 registers by name (registers.ts), as the device holds them. */
  regs: Record<string, number>;
}

/** The VF with number `vf`. */
export function vfNumbered(vfs: readonly NicVf[], vf: number): NicVf {
  const found = vfs.find((v) => v.vf === vf);
  assert(found !== undefined, () => `VF ${vf} was never configured`);
  return found;
}

/** A register's value (a register never written reads 0). */
export function vfRegister(vf: NicVf, name: string): number {
  return vf.regs[name] ?? 0;
}
