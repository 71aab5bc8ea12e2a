/**
 * The L2 switch between the NIC's virtual functions and the external wire: the 82599's
 * embedded VM-to-VM switch in the secure profile, dom0's software bridge in vanilla. Pure
 * decisions: given the ports and a frame, where the frame goes and why it is dropped.
 *
 * Rules, in the order a frame meets them:
 * 1. a frame too short to be Ethernet is a runt;
 * 2. anti-spoofing (the embedded switch only): the source MAC must be the VF's forced MAC;
 * 3. VLAN isolation: a VF's frame travels in its port VLAN (a tag of its own choosing is
 *    dropped), a wire frame in its 802.1Q tag's VLAN (untagged: VLAN 0), and reaches only
 *    ports of that VLAN (the wire is a trunk: it carries every VLAN, tagged);
 * 4. security groups, egress: the sending domain's rules;
 * 5. destination by MAC: broadcast/multicast floods the VLAN (and the wire), a known unicast
 *    goes to its VF, an unknown unicast from a VF goes to the wire;
 * 6. security groups, ingress: each receiving domain's rules, per receiver.
 */
import type { DomainId } from '../../../events/schema.ts';
import { ipv4Number, parseFrame, tagFrame, untagFrame, type FrameHeader } from './ethernet.ts';
import type { NicVf } from './vf.ts';

/** One security-group rule (stateless, like an ACL): what may enter or leave a domain. */
export interface SecurityRule {
  domain: string;
  direction: 'ingress' | 'egress';
  protocol: 'udp' | 'tcp' | 'any';
  /** The remote end, as address/prefix ("10.0.0.0/24"; "0.0.0.0/0" for any). */
  remote: string;
  /** Destination port (ingress) or destination port on the remote end (egress); 0: any. */
  port: number;
  action: 'allow' | 'deny';
}

/** Why a frame was dropped ('ok': it was not). The net.frame event's `verdict`. */
export type Verdict =
  | 'ok'
  | 'runt' /* shorter than an Ethernet header */
  | 'spoof' /* source MAC is not the VF's forced MAC (anti-spoofing on) */
  | 'vlan' /* a VLAN it may not use, or its destination is on another VLAN */
  | 'security-group' /* a security-group rule denied it (or none allowed it) */
  | 'unknown-destination' /* a unicast from the wire for no port of its VLAN */
  | 'no-rx-descriptor' /* the receiving VF's queue is off or has no free descriptor */
  | 'dma-fault' /* the device's DMA faulted in the IOMMU */
  | 'grant-fault' /* netback's grant copy found no page */
  | 'backend-down' /* dom0's network backend is not running */
  | 'tag-mismatch'; /* SIOM: the frame's domain tag is not the VF's domain */

/** A port of the switch: a VF by number, or the uplink to the external wire. */
export type SwitchPort = number | 'wire';

export interface SwitchConfig {
  securityGroups: readonly SecurityRule[];
  /** The names security groups know domains by. */
  domainName: (dom: DomainId) => string | undefined;
  /** The embedded switch checks source MACs per VF; dom0's bridge (stock vif) does not. */
  antiSpoof: boolean;
}

export interface SwitchDecision {
  /** The frame's fate as a whole: 'ok' when the switch forwarded it. */
  verdict: Verdict;
  /** The VLAN it travels in. */
  vlan: number;
  /** The bytes inside the switch and on the wire: tagged when the VLAN is not 0. */
  frame: Uint8Array;
  /** The bytes a VF receives: untagged. */
  inner: Uint8Array;
  /** Where it goes, each with its own verdict (a receiver's ingress rules). */
  out: { to: SwitchPort; verdict: Verdict }[];
}

/** The ports of the switch: VFs the PF driver has assigned to a domain. */
function livePorts(vfs: readonly NicVf[]): NicVf[] {
  return vfs.filter((v) => v.dom >= 0);
}

/**
 * The 82599's per-VF MAC anti-spoofing (PFVFSPOOF.MACAS): with spoofcheck on, a VF may send
 * only from the MAC the PF forced on it. Kept in one place so that the check can be seen,
 * and planted out, whole.
 */
export function spoofCheckPasses(vf: NicVf, header: FrameHeader): boolean {
  return !vf.spoofcheck || header.src === vf.mac;
}

/** Whether a destination MAC is a group address (broadcast or multicast: I/G bit set). */
export function isGroupMac(mac: string): boolean {
  return (Number.parseInt(mac.slice(0, 2), 16) & 1) !== 0;
}

// ---- security groups -----------------------------------------------------------------------

export type Direction = 'ingress' | 'egress';

function prefixMatches(remote: string, address: number): boolean {
  const [text, bits] = remote.split('/');
  const prefix = Number(bits);
  if (prefix === 0) return true;
  const mask = prefix >= 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
  return ((address & mask) >>> 0) === ((ipv4Number(text) & mask) >>> 0);
}

function protocolMatches(rule: SecurityRule, header: FrameHeader): boolean {
  if (rule.protocol === 'any') return true;
  return header.ip !== undefined && header.ip.protocol === (rule.protocol === 'udp' ? 17 : 6);
}

/**
 * Whether one rule matches: protocol, remote prefix (egress: the destination address,
 * ingress: the source address), destination port. A frame that is not IPv4 has no address or
 * port, so only a rule for any protocol, any remote and any port matches it.
 */
export function ruleMatches(rule: SecurityRule, header: FrameHeader, direction: Direction): boolean {
  if (!protocolMatches(rule, header)) return false;
  const ip = header.ip;
  if (ip === undefined) return rule.remote.endsWith('/0') && rule.port === 0;
  if (!prefixMatches(rule.remote, direction === 'egress' ? ip.dst : ip.src)) return false;
  if (rule.port === 0) return true;
  const hasPorts = ip.protocol === 17 || ip.protocol === 6;
  return hasPorts && ip.dstPort === rule.port;
}

/**
 * Stateless security groups: a domain with no rules for a direction lets everything pass that
 * way; with rules, the first that matches decides and no match is a deny (default deny).
 */
export function securityGroupAllows(rules: readonly SecurityRule[], domain: string | undefined, direction: Direction, header: FrameHeader): boolean {
  const mine = rules.filter((r) => r.domain === domain && r.direction === direction);
  if (mine.length === 0) return true;
  const first = mine.find((r) => ruleMatches(r, header, direction));
  return first !== undefined && first.action === 'allow';
}

// ---- the decision --------------------------------------------------------------------------

function dropped(verdict: Verdict, vlan: number, frame: Uint8Array): SwitchDecision {
  return { verdict, vlan, frame, inner: untagFrame(frame), out: [] };
}

/** The frame as it travels inside the switch: tagged with its VLAN, untagged in VLAN 0. */
function onTheSwitch(frame: Uint8Array, vlan: number): { frame: Uint8Array; inner: Uint8Array } {
  const inner = untagFrame(frame);
  return { frame: vlan > 0 ? tagFrame(inner, vlan) : inner, inner };
}

/** Where a frame in `vlan` from `from` is addressed: VFs by MAC, or the wire. */
function destinations(ports: readonly NicVf[], header: FrameHeader, vlan: number, from: SwitchPort): SwitchPort[] | Verdict {
  const sameVlan = ports.filter((v) => v.vlan === vlan && v.vf !== from);
  if (isGroupMac(header.dst)) {
    const vfs: SwitchPort[] = sameVlan.map((v) => v.vf);
    return from === 'wire' ? vfs : [...vfs, 'wire'];
  }
  const target = sameVlan.find((v) => v.mac === header.dst);
  if (target !== undefined) return [target.vf];
  // A frame to the sender's own MAC (hairpin) goes nowhere: the 82599 never loops a pool back to itself.
  if (from !== 'wire' && ports.some((v) => v.vf === from && v.mac === header.dst)) return [];
  if (from !== 'wire') return ['wire'];
  return ports.some((v) => v.mac === header.dst) ? 'vlan' : 'unknown-destination';
}

/**
 * The switch's decision for a frame from a VF (its number) or from the wire. Pure: the
 * caller emits what it says.
 */
export function switchDecide(vfs: readonly NicVf[], config: SwitchConfig, frame: Uint8Array, from: { vf: number } | 'wire'): SwitchDecision {
  const ports = livePorts(vfs);
  const header = parseFrame(frame);
  const source = from === 'wire' ? undefined : ports.find((v) => v.vf === from.vf);
  const vlan = source?.vlan ?? header?.vlan ?? 0;
  if (header === undefined) return dropped('runt', vlan, frame);
  if (from !== 'wire' && source === undefined) return dropped('vlan', vlan, frame);
  const bytes = onTheSwitch(frame, vlan);
  if (source !== undefined && config.antiSpoof && !spoofCheckPasses(source, header)) return { verdict: 'spoof', vlan, ...bytes, out: [] };
  // A guest may not pick its VLAN: a tag other than its port VLAN is VLAN hopping.
  if (source !== undefined && header.vlan !== 0 && header.vlan !== source.vlan) return dropped('vlan', vlan, frame);
  if (source !== undefined && !securityGroupAllows(config.securityGroups, config.domainName(source.dom), 'egress', header)) {
    return { verdict: 'security-group', vlan, ...bytes, out: [] };
  }
  const to = destinations(ports, header, vlan, source?.vf ?? 'wire');
  if (typeof to === 'string') return { verdict: to, vlan, ...bytes, out: [] };
  const out = to.map((port) => ({ to: port, verdict: ingressVerdict(ports, config, header, port) }));
  return { verdict: 'ok', vlan, ...bytes, out };
}

function ingressVerdict(ports: readonly NicVf[], config: SwitchConfig, header: FrameHeader, port: SwitchPort): Verdict {
  if (port === 'wire') return 'ok';
  const vf = ports.find((v) => v.vf === port)!;
  return securityGroupAllows(config.securityGroups, config.domainName(vf.dom), 'ingress', header) ? 'ok' : 'security-group';
}
