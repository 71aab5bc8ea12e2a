import { NO_DOMAIN } from '../../../events/schema.ts';
import { pciBdfFormat } from '../../hardware/pci/index.ts';
import { PAGE_SIZE } from '../../hypervisor/config.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/** Every DMA that reaches memory reaches a frame the device's domain owns. */
export const dmaConfined: InvariantChecker = {
  name: 'dma-confined',
  rule: 'Every DMA that reaches memory reaches a frame owned by the domain its device is assigned to.',
  kinds: ['dma.request'],
  check(state, event) {
    if (event.kind !== 'dma.request' || event.fault !== 0 || event.hpa < 0) return undefined;
    const mfn = Math.floor(event.hpa / PAGE_SIZE);
    const owner = state.ppt.get(mfn)?.owner ?? NO_DOMAIN;
    if (owner === event.dom && owner !== NO_DOMAIN) return undefined;
    const device = `device ${pciBdfFormat(event.sid)}${event.dom === NO_DOMAIN ? ' (assigned to nobody)' : ` of ${domainLabel(state, event.dom)}`}`;
    const whose = owner === NO_DOMAIN ? 'a frame nobody owns' : `${domainLabel(state, owner)}'s frame`;
    return { dom: event.dom, mfn, detail: `${device} ${event.write ? 'wrote' : 'read'} ${event.len} bytes of ${whose} ${mfn} (iova 0x${event.iova.toString(16)})` };
  },
};
