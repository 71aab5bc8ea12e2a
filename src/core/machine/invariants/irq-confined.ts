import { NO_DOMAIN, NO_FRAME } from '../../../events/schema.ts';
import { pciBdfFormat } from '../../hardware/pci/index.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/** An interrupt a device raises reaches only the vCPUs of the domain the device is assigned to. */
export const irqConfined: InvariantChecker = {
  name: 'irq-confined',
  rule: 'An interrupt a device raises reaches only vCPUs of the domain the device is assigned to.',
  kinds: ['msi'],
  check(state, event) {
    if (event.kind !== 'msi' || event.fault !== 0 || event.dom === NO_DOMAIN) return undefined;
    const owner = state.io.vfs.find((v) => v.bdf === event.sid)?.dom ?? NO_DOMAIN;
    if (owner === event.dom) return undefined;
    const from = owner === NO_DOMAIN ? 'an unassigned device' : `${domainLabel(state, owner)}'s device`;
    return { dom: event.dom, mfn: NO_FRAME, detail: `vector 0x${event.vector.toString(16)} from ${from} ${pciBdfFormat(event.sid)} reached ${domainLabel(state, event.dom)}'s vCPU ${event.vcpu}` };
  },
};
