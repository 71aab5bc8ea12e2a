import { NO_DOMAIN } from '../../../events/schema.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/** A frame reaches a new owner only after the previous owner's data was scrubbed (XSA-245). */
export const scrubBetweenOwners: InvariantChecker = {
  name: 'scrub-between-owners',
  rule: "A frame passes to a new owner only after the previous owner's data in it was scrubbed (XSA-245).",
  kinds: ['smm.ppt.update'],
  check(state, event) {
    if (event.kind !== 'smm.ppt.update' || event.owner === NO_DOMAIN || event.prevOwner !== NO_DOMAIN) return undefined;
    const page = state.memory.get(event.mfn);
    if (page === undefined || page.writer === event.owner) return undefined;
    return { dom: event.owner, mfn: event.mfn, detail: `frame ${event.mfn} given to ${domainLabel(state, event.owner)} still holds ${domainLabel(state, page.writer)}'s data` };
  },
};
