import { NO_FRAME } from '../../../events/schema.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/** No frame is mapped at two places (two domains, or two gfns of one domain). */
export const noAliasing: InvariantChecker = {
  name: 'no-aliasing',
  rule: 'No frame is mapped at two places at once: not by two domains, nor at two gfns of one domain.',
  kinds: ['p2m.update'],
  check(state, event) {
    if (event.kind !== 'p2m.update' || event.mfn === NO_FRAME) return undefined;
    const existing = state.m2p.get(event.mfn);
    if (existing === undefined || (existing.dom === event.dom && existing.gfn === event.gfn)) return undefined;
    return {
      dom: event.dom,
      mfn: event.mfn,
      detail: `frame ${event.mfn} mapped by ${domainLabel(state, event.dom)} at gfn ${event.gfn} while ${domainLabel(state, existing.dom)} maps it at gfn ${existing.gfn}`,
    };
  },
};
