/**
 * The fuzzer's adversarial actions: what guests, devices and dom0 may do to the machine, as
 * fast-check arbitraries. Each action enters the machine as one `input` (so a recording of a
 * fuzz case replays and verifies like any other), at its own tick.
 */
import fc from 'fast-check';
import yaml from 'js-yaml';
import { BROADCAST_MAC } from '../core/hardware/nic/ethernet.ts';
import { TX_BUFFERS } from '../core/machine/guests/scripted-nic-driver.ts';
import { x86Program } from './x86-program.ts';

/** The fuzz machine's cast (see case.ts): scripted tenants with a VF each, and an x86 attacker. */
export const TENANTS = ['alice', 'bob', 'mallory'] as const;
export type Tenant = (typeof TENANTS)[number];
/** The x86 attacker: its code arrives as actions (a new image, run from the start). */
export const ATTACKER = 'erin';
export const TENANT_MACS: Record<Tenant, string> = { alice: '02:00:00:00:00:0a', bob: '02:00:00:00:00:0b', mallory: '02:00:00:00:00:0c' };
export const TENANT_IPS: Record<Tenant, string> = { alice: '10.0.0.1', bob: '10.0.0.2', mallory: '10.0.1.3' };
/** Pages each tenant has (its gfns are 0 .. TENANT_PAGES-1). */
export const TENANT_PAGES = 8;
/** The VFs' routing ids: 02:10.0, 02:10.2, ... (first VF offset 0x80, stride 2 from the PF at 02:00.0). */
export const VF_SIDS = [0x0280, 0x0282, 0x0284, 0x0286];

export type Action =
  | { kind: 'guest'; domain: Tenant; ops: unknown[] }
  | { kind: 'dom0'; op: string; domain: string; args?: [number, number, number] }
  | { kind: 'wire'; frame: string }
  | { kind: 'dma'; vf: number; write: boolean; iova: number; data: string; len: number }
  | { kind: 'msi'; sid: number; address: number; data: number }
  | { kind: 'x86'; image: string };

/** The input an action becomes. */
export function actionInput(action: Action): { key: string; value: string } {
  switch (action.kind) {
    case 'guest': return { key: `domain.${action.domain}.ops`, value: yaml.dump(action.ops, { flowLevel: 0, lineWidth: -1 }).trim() };
    case 'dom0': return { key: `dom0.${action.op}`, value: action.args ? `${action.domain}:${action.args.join(':')}` : action.domain };
    case 'wire': return { key: 'wire.frame', value: action.frame };
    case 'dma': return { key: 'device.dma', value: `${action.vf}:${action.write ? 'w' : 'r'}:0x${action.iova.toString(16)}:${action.write ? action.data : action.len}` };
    case 'msi': return { key: 'device.msi', value: `0x${action.sid.toString(16)}:0x${action.address.toString(16)}:0x${action.data.toString(16)}` };
    case 'x86': return { key: `domain.${ATTACKER}.x86`, value: action.image };
  }
}

export function actionText(action: Action): string {
  const { key, value } = actionInput(action);
  return `${key}=${value}`;
}

// ---- values an attacker likes ----------------------------------------------------------

const gfn = fc.oneof({ weight: 6, arbitrary: fc.nat(TENANT_PAGES + 1) }, { weight: 1, arbitrary: fc.constantFrom(-1, 64, 1023, 1 << 20) });
const gpa = fc.oneof(
  { weight: 6, arbitrary: fc.nat(TENANT_PAGES * 4096 - 1) },
  { weight: 1, arbitrary: fc.constantFrom(0xfee00000, 0xfffff000, 0x00800000, TENANT_PAGES * 4096) },
);
const domid = fc.oneof({ weight: 5, arbitrary: fc.nat(4) }, { weight: 1, arbitrary: fc.constantFrom(-1, 0x7ff0, 99) });
const hexBytes = (max: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: 1, maxLength: max }).map((b) => Buffer.from(b).toString('hex'));
const mac = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...Object.values(TENANT_MACS), BROADCAST_MAC) }, { weight: 1, arbitrary: fc.constant('02:de:ad:be:ef:01') });
const vlan = fc.constantFrom(0, 10, 20, 30);

/** An MSI address: remappable (handle, SHV) most of the time, else compatibility format. */
export const msiAddress = fc.oneof(
  fc.record({ handle: fc.nat(7), shv: fc.boolean() }).map(({ handle, shv }) => (0xfee00000 | ((handle & 0x7fff) << 5) | (1 << 4) | (shv ? 1 << 3 : 0)) >>> 0),
  fc.record({ dest: fc.nat(3), low: fc.constantFrom(0, 4, 8) }).map(({ dest, low }) => (0xfee00000 | (dest << 12) | low) >>> 0),
);

// ---- scripted guest operations -----------------------------------------------------------

const guestOp: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ gpa, hex: hexBytes(32) }).map((w) => ({ write: w })) },
  { weight: 3, arbitrary: fc.record({ gpa, len: fc.integer({ min: 1, max: 64 }) }).map((r) => ({ read: r })) },
  { weight: 2, arbitrary: fc.record({ gpa: fc.nat(TENANT_PAGES * 4096 - 64) }).map((c) => ({ canary: c })) },
  // What a tenant would write to pass as another: a neighbour's MAC over the source of its queued frame.
  {
    weight: 4,
    arbitrary: fc.tuple(fc.constantFrom(...TENANTS), fc.constantFrom(...TX_BUFFERS)).map(([t, buffer]) => ({ write: { gpa: buffer + 6, hex: TENANT_MACS[t].replaceAll(':', '') } })),
  },
  { weight: 1, arbitrary: fc.constant('scan') },
  { weight: 3, arbitrary: fc.record({ gfn, count: fc.integer({ min: 1, max: 3 }) }).map((h) => ({ hypercall: { op: 'populate_physmap', ...h } })) },
  { weight: 3, arbitrary: fc.array(gfn, { minLength: 1, maxLength: 3 }).map((gfns) => ({ hypercall: { op: 'decrease_reservation', gfns } })) },
  { weight: 2, arbitrary: fc.record({ domid, gfn, gpfn: gfn }).map((h) => ({ hypercall: { op: 'add_to_physmap', ...h } })) },
  { weight: 1, arbitrary: fc.constant('nic_setup') },
  {
    weight: 4,
    arbitrary: fc.record({ dst: mac, src: fc.option(mac, { nil: undefined }), vlan: fc.option(vlan, { nil: undefined }), hex: hexBytes(24), buffer: fc.option(gpa, { nil: undefined }) }, { requiredKeys: ['dst', 'hex'] })
      .map((t) => ({ nic_tx: Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined)) })),
  },
  { weight: 2, arbitrary: fc.record({ buffer: gpa }).map((r) => ({ nic_rx: r })) },
  { weight: 2, arbitrary: fc.record({ bar: fc.constantFrom(0, 3), offset: fc.constantFrom(0x0, 0x100, 0x108, 0x400, 0x1000, 0x1018, 0x2000, 0x2018, 0x8, 0xc), value: fc.oneof(fc.nat(0xffff), fc.constantFrom(0xfee00000, 0x41)) }).map((m) => ({ mmio: m })) },
  { weight: 1, arbitrary: fc.constant('yield') },
  { weight: 1, arbitrary: fc.constant('exit') },
);

// ---- the actions ---------------------------------------------------------------------------

const tenant = fc.constantFrom(...TENANTS);

/** What dom0 does in a case (the coverage table lists the ones never done). */
export const DOM0_OPS = ['destroy_domain', 'assign_vf', 'deassign_vf', 'create_domain', 'foreign_read', 'crash_backend'] as const;
/** The ones that take only a domain (in this order: the arbitrary's order fixes which case a seed gives). */
const DOM0_DOMAIN_OPS = DOM0_OPS.slice(0, 4);

/** The families of actions, each with its weight in a campaign that uses them all. */
const ACTION_FAMILIES: Record<Action['kind'], { weight: number; arbitrary: fc.Arbitrary<Action> }> = {
  guest: { weight: 8, arbitrary: fc.record({ domain: tenant, ops: fc.array(guestOp, { minLength: 1, maxLength: 5 }) }).map((a): Action => ({ kind: 'guest', ...a })) },
  dom0: {
    weight: 3,
    arbitrary: fc.oneof(
      fc.record({ op: fc.constantFrom(...DOM0_DOMAIN_OPS), domain: tenant }).map((a): Action => ({ kind: 'dom0', ...a })),
      fc.record({ domain: tenant, args: fc.tuple(fc.nat(TENANT_PAGES - 1), fc.constantFrom(0, 64), fc.constantFrom(16, 64)) }).map((a): Action => ({ kind: 'dom0', op: 'foreign_read', ...a })),
      fc.constant<Action>({ kind: 'dom0', op: 'crash_backend', domain: '-' }),
    ),
  },
  wire: { weight: 2, arbitrary: fc.record({ dst: mac, src: mac, vlan, hex: hexBytes(16) }).map(({ dst, src, vlan: v, hex }): Action => ({ kind: 'wire', frame: frameHex(dst, src, v, hex) })) },
  dma: {
    weight: 4,
    arbitrary: fc.record({ vf: fc.integer({ min: 1, max: 4 }), write: fc.boolean(), iova: gpa, data: hexBytes(16), len: fc.integer({ min: 1, max: 64 }) })
      .map((a): Action => ({ kind: 'dma', ...a })),
  },
  msi: { weight: 2, arbitrary: fc.record({ sid: fc.constantFrom(...VF_SIDS, 0x0200, 0x0010), address: msiAddress, data: fc.oneof(fc.constant(0), fc.nat(0xff)) }).map((a): Action => ({ kind: 'msi', ...a })) },
  x86: { weight: 3, arbitrary: x86Program.map((image): Action => ({ kind: 'x86', image: Buffer.from(image).toString('hex') })) },
};

export const ACTION_KINDS = Object.keys(ACTION_FAMILIES) as Action['kind'][];

/** Actions of the given families (all of them by default), weighted as in ACTION_FAMILIES. */
export function actionArbitrary(kinds: readonly Action['kind'][] = ACTION_KINDS): fc.Arbitrary<Action> {
  return fc.oneof(...kinds.map((kind) => ACTION_FAMILIES[kind]));
}

/** An Ethernet frame as hex: destination, source, an 802.1Q tag when vlan > 0, type 0x88b5, payload. */
export function frameHex(dst: string, src: string, vlan: number, payloadHex: string): string {
  const macHex = (m: string): string => m.replaceAll(':', '');
  const tag = vlan > 0 ? `8100${vlan.toString(16).padStart(4, '0')}` : '';
  return `${macHex(dst)}${macHex(src)}${tag}88b5${payloadHex}`;
}
