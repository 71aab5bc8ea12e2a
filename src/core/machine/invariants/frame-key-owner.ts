import { NO_DOMAIN } from '../../../events/schema.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/** A frame is encrypted with its owner's key, never with the key of whoever happened to be live. */
export const frameKeyOwner: InvariantChecker = {
  name: 'frame-key-owner',
  rule: "A frame is encrypted with its owner's key, never with the key of whichever domain happens to be live.",
  kinds: ['mem.encrypt'],
  check(state, event) {
    if (event.kind !== 'mem.encrypt') return undefined;
    const owner = state.ppt.get(event.mfn)?.owner ?? NO_DOMAIN;
    if (owner === event.keyDom) return undefined;
    return { dom: owner, mfn: event.mfn, detail: `frame ${event.mfn} of ${owner === NO_DOMAIN ? 'nobody' : domainLabel(state, owner)} encrypted with ${domainLabel(state, event.keyDom)}'s key` };
  },
};
