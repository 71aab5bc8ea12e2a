import { NO_DOMAIN, NO_FRAME } from '../../events/schema.ts';
import type { InvariantChecker } from './types.ts';

/** A frame has one owner at a time, and only its owner maps it. */
export const singleOwner: InvariantChecker = {
  name: 'single-owner',
  check(state, event) {
    if (event.kind === 'smm.ppt.update' && event.owner !== NO_DOMAIN) {
      const current = state.ppt.get(event.mfn);
      if (current !== undefined && current.owner !== event.owner) {
        return { dom: event.owner, mfn: event.mfn, detail: `frame ${event.mfn} given to domain ${event.owner} while domain ${current.owner} owns it` };
      }
    }
    if (event.kind === 'p2m.update' && event.mfn !== NO_FRAME) {
      const owner = state.ppt.get(event.mfn)?.owner;
      if (owner !== event.dom) {
        return { dom: event.dom, mfn: event.mfn, detail: `domain ${event.dom} maps frame ${event.mfn} at gfn ${event.gfn}, but the frame's owner is ${owner ?? 'nobody'}` };
      }
    }
    return undefined;
  },
};
