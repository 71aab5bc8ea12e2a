/**
 * Ethernet frames as the network model carries them: MAC addresses, the 802.1Q tag, and the
 * IPv4/UDP/TCP fields the security groups match on. Frames are bytes on the wire (no FCS).
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_VLAN = 0x8100;
export const IP_PROTO_TCP = 6;
export const IP_PROTO_UDP = 17;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isMac(text: string): boolean {
  return MAC_PATTERN.test(text);
}

export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}

export function macText(bytes: Uint8Array, at = 0): string {
  return Array.from(bytes.subarray(at, at + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function isIpv4(text: string): boolean {
  const m = IPV4_PATTERN.exec(text);
  return m !== null && m.slice(1).every((part) => Number(part) <= 255);
}

export function ipv4Number(text: string): number {
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function ipv4Text(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}

/** What a frame says about itself, as far as the switch and the security groups look. */
export interface FrameHeader {
  dst: string;
  src: string;
  /** The 802.1Q VLAN id, or 0 when untagged. */
  vlan: number;
  ethertype: number;
  /** IPv4 only (undefined otherwise). */
  ip?: { src: number; dst: number; protocol: number; srcPort: number; dstPort: number };
  /** Where the frame's payload (after the Ethernet and VLAN headers) begins. */
  payloadAt: number;
}

/** Parses a frame's headers; undefined when it is too short to be Ethernet. */
export function parseFrame(frame: Uint8Array): FrameHeader | undefined {
  if (frame.length < 14) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let at = 12;
  let vlan = 0;
  let ethertype = view.getUint16(at);
  if (ethertype === ETHERTYPE_VLAN) {
    if (frame.length < 18) return undefined;
    vlan = view.getUint16(14) & 0x0fff;
    ethertype = view.getUint16(16);
    at = 16;
  }
  const payloadAt = at + 2;
  const header: FrameHeader = { dst: macText(frame, 0), src: macText(frame, 6), vlan, ethertype, payloadAt };
  if (ethertype === ETHERTYPE_IPV4 && frame.length >= payloadAt + 20) {
    const ihl = (frame[payloadAt] & 0x0f) * 4;
    const protocol = frame[payloadAt + 9];
    const l4 = payloadAt + ihl;
    const hasPorts = (protocol === IP_PROTO_UDP || protocol === IP_PROTO_TCP) && frame.length >= l4 + 4;
    header.ip = {
      src: view.getUint32(payloadAt + 12), dst: view.getUint32(payloadAt + 16), protocol,
      srcPort: hasPorts ? view.getUint16(l4) : 0, dstPort: hasPorts ? view.getUint16(l4 + 2) : 0,
    };
  }
  return header;
}

/** Inserts an 802.1Q tag (the switch's port VLAN) after the source MAC. */
export function tagFrame(frame: Uint8Array, vlan: number): Uint8Array {
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, 12));
  out[12] = ETHERTYPE_VLAN >> 8;
  out[13] = ETHERTYPE_VLAN & 0xff;
  out[14] = (vlan >> 8) & 0x0f;
  out[15] = vlan & 0xff;
  out.set(frame.subarray(12), 16);
  return out;
}

/** Removes an 802.1Q tag, if there is one. */
export function untagFrame(frame: Uint8Array): Uint8Array {
  if (frame.length < 18 || frame[12] !== ETHERTYPE_VLAN >> 8 || frame[13] !== (ETHERTYPE_VLAN & 0xff)) return frame;
  const out = new Uint8Array(frame.length - 4);
  out.set(frame.subarray(0, 12));
  out.set(frame.subarray(16), 12);
  return out;
}

/** The ones' complement sum of RFC 1071, folded to 16 bits. */
function checksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface FrameSpec {
  dst: string;
  src: string;
  vlan?: number;
  /** An IPv4 UDP datagram (with checksums), or raw bytes after the Ethernet header. */
  udp?: { src: string; dst: string; srcPort: number; dstPort: number };
  /** The UDP payload, or the whole Ethernet payload when there is no `udp`. */
  payload: Uint8Array;
  /** The Ethernet type of a raw payload (default 0x88b5, the IEEE local experimental type). */
  ethertype?: number;
}

/** Builds a frame: Ethernet (with a VLAN tag when vlan > 0), then IPv4/UDP or a raw payload. */
export function buildFrame(spec: FrameSpec): Uint8Array {
  let body = spec.payload;
  let ethertype = spec.ethertype ?? 0x88b5;
  if (spec.udp) {
    ethertype = ETHERTYPE_IPV4;
    const udpLength = 8 + spec.payload.length;
    const ip = new Uint8Array(20 + udpLength);
    const v = new DataView(ip.buffer);
    v.setUint8(0, 0x45);
    v.setUint16(2, ip.length);
    v.setUint8(8, 64);
    v.setUint8(9, IP_PROTO_UDP);
    v.setUint32(12, ipv4Number(spec.udp.src));
    v.setUint32(16, ipv4Number(spec.udp.dst));
    v.setUint16(10, checksum(ip.subarray(0, 20)));
    v.setUint16(20, spec.udp.srcPort);
    v.setUint16(22, spec.udp.dstPort);
    v.setUint16(24, udpLength);
    ip.set(spec.payload, 28);
    // The UDP checksum covers a pseudo-header: addresses, protocol and length.
    const pseudo = (ipv4Number(spec.udp.src) >>> 16) + (ipv4Number(spec.udp.src) & 0xffff)
      + (ipv4Number(spec.udp.dst) >>> 16) + (ipv4Number(spec.udp.dst) & 0xffff) + IP_PROTO_UDP + udpLength;
    v.setUint16(26, checksum(ip.subarray(20), pseudo) || 0xffff);
    body = ip;
  }
  const frame = new Uint8Array(14 + body.length);
  frame.set(macBytes(spec.dst), 0);
  frame.set(macBytes(spec.src), 6);
  frame[12] = ethertype >> 8;
  frame[13] = ethertype & 0xff;
  frame.set(body, 14);
  return spec.vlan ? tagFrame(frame, spec.vlan) : frame;
}
