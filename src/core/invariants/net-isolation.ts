import { NO_DOMAIN, NO_FRAME } from '../../events/schema.ts';
import { parseFrame } from '../io/ethernet.ts';
import { domainLabel } from '../state.ts';
import type { InvariantChecker } from './types.ts';

const VF_RX = /^vf(\d+)\.rx$/;

/**
 * A domain's packets never reach another VLAN, and no domain sends as another: a frame
 * delivered to a VF came on that VF's VLAN, and a frame the switch forwards from a domain
 * carries a source MAC that is not another local port's.
 */
export const netIsolation: InvariantChecker = {
  name: 'net-isolation',
  kinds: ['net.frame'],
  check(state, event) {
    if (event.kind !== 'net.frame' || event.verdict !== 'ok') return undefined;
    const rx = VF_RX.exec(event.at);
    if (rx) {
      const vf = state.io.vfs.find((v) => v.vf === Number(rx[1]));
      if (vf === undefined || vf.vlan === event.vlan) return undefined;
      return { dom: vf.dom, mfn: NO_FRAME, detail: `a frame of VLAN ${event.vlan} reached VF ${vf.vf} of ${domainLabel(state, vf.dom)}, which is on VLAN ${vf.vlan}` };
    }
    if (event.at !== 'switch' || event.dom === NO_DOMAIN) return undefined;
    const source = parseFrame(event.frame)?.src;
    const victim = state.io.vfs.find((v) => v.mac === source && v.dom !== event.dom && v.dom !== NO_DOMAIN);
    if (victim === undefined) return undefined;
    return { dom: event.dom, mfn: NO_FRAME, detail: `${domainLabel(state, event.dom)} sent a frame as ${domainLabel(state, victim.dom)} (source MAC ${source})` };
  },
};
