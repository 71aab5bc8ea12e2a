import { NO_FRAME } from '../../../events/schema.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

const VF_RX = /^vf(\d+)\.rx$/;

/**
 * Every frame delivered to a VF is on that VF's configured VLAN, whatever tag it carried:
 * the VLAN of the port it entered the switch by (a VF's port VLAN as the PF driver
 * configured it, or the wire frame's own 802.1Q tag: the wire is a trunk) equals the
 * receiving VF's port VLAN. Read from the switch's record of the ingress port and the VFs'
 * configuration, not from the VLAN the device reported with the frame.
 */
export const vlanConfined: InvariantChecker = {
  name: 'vlan-confined',
  rule: "A frame delivered to a VF entered the switch on that VF's configured VLAN, whatever 802.1Q tag it carried.",
  kinds: ['net.frame'],
  check(state, event) {
    if (event.kind !== 'net.frame' || event.verdict !== 'ok') return undefined;
    const rx = VF_RX.exec(event.at);
    const ingress = state.io.ingress;
    if (rx === null || ingress === null) return undefined;
    const vfs = state.io.vfs;
    const receiver = vfs.find((v) => v.vf === Number(rx[1]));
    const sender = ingress.port === 'wire' ? undefined : vfs.find((v) => v.vf === ingress.port);
    const vlan = ingress.port === 'wire' ? ingress.tag : sender?.vlan;
    if (receiver === undefined || vlan === undefined || vlan === receiver.vlan) return undefined;
    const from = sender === undefined ? 'the wire' : `VF ${sender.vf} of ${domainLabel(state, sender.dom)}`;
    const tag = ingress.tag > 0 && sender !== undefined ? ` (tagged for VLAN ${ingress.tag})` : '';
    return {
      dom: receiver.dom, mfn: NO_FRAME,
      detail: `a frame from ${from} on VLAN ${vlan}${tag} reached VF ${receiver.vf} of ${domainLabel(state, receiver.dom)}, configured on VLAN ${receiver.vlan}`,
    };
  },
};
