import { NO_DOMAIN, NO_FRAME } from '../../../events/schema.ts';
import { parseFrame } from '../../hardware/nic/ethernet.ts';
import { securityGroupAllows } from '../../hardware/nic/switch.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

const VF_RX = /^vf(\d+)\.rx$/;

/**
 * A domain's packets never reach another VLAN or domain against the rules, and no domain
 * sends as another: a frame delivered to a VF came on that VF's VLAN and passes its
 * domain's ingress rules, and a frame the switch forwards from a domain carries a source MAC
 * that is not another local port's.
 */
export const netIsolation: InvariantChecker = {
  name: 'net-isolation',
  rule: "A frame reaches only the VLAN and domain the switch's rules allow, and no domain sends with another local port's source MAC.",
  kinds: ['net.frame'],
  check(state, event) {
    if (event.kind !== 'net.frame' || event.verdict !== 'ok') return undefined;
    const rx = VF_RX.exec(event.at);
    if (rx) {
      const vf = state.io.vfs.find((v) => v.vf === Number(rx[1]));
      if (vf === undefined) return undefined;
      if (vf.vlan !== event.vlan) {
        return { dom: vf.dom, mfn: NO_FRAME, detail: `a frame of VLAN ${event.vlan} reached VF ${vf.vf} of ${domainLabel(state, vf.dom)}, which is on VLAN ${vf.vlan}` };
      }
      const header = parseFrame(event.frame);
      const name = state.domains.get(vf.dom)?.name;
      if (header === undefined || securityGroupAllows(state.config.network.securityGroups, name, 'ingress', header)) return undefined;
      return { dom: vf.dom, mfn: NO_FRAME, detail: `a frame from ${header.src} reached ${domainLabel(state, vf.dom)} against its security group` };
    }
    if (event.at !== 'switch' || event.dom === NO_DOMAIN) return undefined;
    const source = parseFrame(event.frame)?.src;
    const victim = state.io.vfs.find((v) => v.mac === source && v.dom !== event.dom && v.dom !== NO_DOMAIN);
    if (victim === undefined) return undefined;
    return { dom: event.dom, mfn: NO_FRAME, detail: `${domainLabel(state, event.dom)} sent a frame as ${domainLabel(state, victim.dom)} (source MAC ${source})` };
  },
};
