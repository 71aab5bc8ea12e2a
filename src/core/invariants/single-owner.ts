import { NO_DOMAIN, NO_FRAME } from '../../events/schema.ts';
import { domainLabel } from '../state.ts';
import type { InvariantChecker } from './types.ts';

/** A frame has one owner at a time, and only its owner maps it. */
export const singleOwner: InvariantChecker = {
  name: 'single-owner',
  check(state, event) {
    if (event.kind === 'smm.ppt.update' && event.owner !== NO_DOMAIN) {
      const current = state.ppt.get(event.mfn);
      if (current !== undefined && current.owner !== event.owner) {
        return { dom: event.owner, mfn: event.mfn, detail: `frame ${event.mfn} given to ${domainLabel(state, event.owner)} while ${domainLabel(state, current.owner)} owns it` };
      }
    }
    if (event.kind === 'p2m.update' && event.mfn !== NO_FRAME) {
      const owner = state.ppt.get(event.mfn)?.owner;
      if (owner !== event.dom) {
        return { dom: event.dom, mfn: event.mfn, detail: `${domainLabel(state, event.dom)} maps frame ${event.mfn} at gfn ${event.gfn}, but its owner is ${owner === undefined ? 'nobody' : domainLabel(state, owner)}` };
      }
    }
    return undefined;
  },
};
