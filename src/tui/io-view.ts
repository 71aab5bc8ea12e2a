/**
 * The I/O panes, from `state.io`: the IOMMU (GSTS, assigned devices, context cache, IOTLB,
 * fault records), interrupt remapping (Xen's IRTEs, the interrupt entry cache) and the
 * NIC/SIOM (each VF's identity and ring registers, SIOM buffer depths, dom0's netback).
 * The three sections share the pane's rows: each gets what it needs when all fit, else a
 * fair share, and a cut section ends with a line saying how many lines it left out.
 */
import type { DomainId } from '../events/schema.ts';
import type { NicVf } from '../core/hardware/nic/vf.ts';
import { NIC_PF_BDF } from '../core/hypervisor/io/io-state.ts';
import {
  VTD_GSTS_IRES, VTD_GSTS_QIES, VTD_GSTS_TES, vtdFaultReasonName,
  type VtdContextCacheEntry, type VtdFaultRecord, type VtdIotlbEntry,
} from '../core/hardware/iommu/index.ts';
import { PCI_SRIOV_TOTAL_VF, pciBdfFormat, pciFunctionAt, pciGetLe, pciIdentityOf, pciSriovVfCount } from '../core/hardware/pci/index.ts';
import type { MachineState } from '../core/machine/state.ts';
import { line, type Line } from './span-lines.ts';
import { hexOrNone } from './text.ts';
import { accent, type Theme } from './theme.ts';

export interface IoSection {
  title: string;
  lines: Line[];
}

/** A domain by name ("dom0", "alice"), "-" for none. */
export function domName(state: MachineState, dom: DomainId): string {
  if (dom < 0) return '-';
  return state.domains.get(dom)?.name ?? `d${dom}`;
}

const onOff = (on: boolean): string => (on ? 'on' : 'off');
const hexShort = (n: number): string => `0x${n.toString(16)}`;

/** Items joined by two spaces, wrapped into lines of `width` after a `label` column. */
export function packed(label: string, items: readonly string[], width: number): Line[] {
  const indent = ' '.repeat(label.length);
  const out: string[] = [];
  let current = label;
  for (const item of items) {
    const sep = current.length > label.length ? '  ' : '';
    if (current.length > label.length && current.length + sep.length + item.length > width) {
      out.push(current);
      current = indent + item;
    } else {
      current += sep + item;
    }
  }
  out.push(current);
  return out.map((text) => line(text));
}

// ---- IOMMU -------------------------------------------------------------------------------

function gstsText(gsts: number): string {
  return `TE ${onOff((gsts & VTD_GSTS_TES) !== 0)}  IRE ${onOff((gsts & VTD_GSTS_IRES) !== 0)}  QIES ${onOff((gsts & VTD_GSTS_QIES) !== 0)}`;
}

function deviceItems(state: MachineState): string[] {
  const xen = state.io.xenVtd;
  return [...xen.devices].sort(([a], [b]) => a - b).map(([sid, dom]) => {
    const did = xen.domains.get(dom)?.did;
    return `${pciBdfFormat(sid)} -> did ${did ?? '?'} ${domName(state, dom)}`;
  });
}

function contextItem(e: VtdContextCacheEntry): string {
  return `${pciBdfFormat(e.sid)} did ${e.did} slpt ${hexShort(e.slptptr)}${e.tt === 2 ? ' pt' : ''}`;
}

function iotlbItem(e: VtdIotlbEntry): string {
  const rights = `${e.read ? 'R' : '-'}${e.write ? 'W' : '-'}`;
  return `${pciBdfFormat(e.sid)} did ${e.did} ${hexShort(e.gfn)}->${hexShort(e.hpa)} ${rights}`;
}

function faultLine(record: VtdFaultRecord, index: number, theme: Theme): Line {
  const access = record.fr >= 0x20 ? 'interrupt' : record.t ? 'read' : 'write';
  const text = `  fault FRCD${index} ${pciBdfFormat(record.sid)} ${hexShort(record.fr)} ${vtdFaultReasonName(record.fr)} fi ${hexShort(record.fi)} ${access}`;
  return line(text, accent(theme, 'problem'));
}

export function iommuSection(state: MachineState, width: number, theme: Theme): IoSection {
  const vtd = state.io.vtd;
  const faults = vtd.frcd.map((r, i) => [r, i] as const).filter(([r]) => r.f);
  const devices = deviceItems(state);
  const iotlb = [...vtd.iotlb.values()];
  const lines: Line[] = [
    line(`IOMMU (VT-d): GSTS ${gstsText(vtd.regs.gsts)}  faults ${faults.length}  ctx ${vtd.contextCache.size}  IOTLB ${iotlb.length}`),
    ...(devices.length > 0 ? packed('  devices ', devices, width) : [line(`  devices  none assigned${state.io.xenVtd.enabled ? '' : ' (DMA remapping off)'}`, accent(theme, 'dim'))]),
    ...faults.map(([r, i]) => faultLine(r, i, theme)),
  ];
  if (vtd.contextCache.size > 0) lines.push(...packed('  ctx     ', [...vtd.contextCache.values()].map(contextItem), width));
  if (iotlb.length > 0) lines.push(...packed('  IOTLB   ', iotlb.map(iotlbItem), width));
  return { title: 'IOMMU', lines };
}

// ---- interrupt remapping -----------------------------------------------------------------

export function interruptSection(state: MachineState, width: number, theme: Theme): IoSection {
  const io = state.io;
  const irtes = [...io.xenVtd.irtes].sort(([a], [b]) => a - b)
    .map(([index, e]) => `${index}: ${pciBdfFormat(e.sid)} -> ${domName(state, e.dom)}.${e.vcpu} vec ${hexShort(e.vector)}`);
  const ire = (io.vtd.regs.gsts & VTD_GSTS_IRES) !== 0;
  const lines: Line[] = [line(`Interrupt remapping: ${ire ? 'on' : 'off'}  IRT ${hexOrNone(io.xenVtd.irt)}  IRTEs ${irtes.length}  IEC ${io.vtd.iec.size} cached`)];
  if (irtes.length > 0) lines.push(...packed('  IRTE ', irtes, width));
  else lines.push(line('  IRTE  none written', accent(theme, 'dim')));
  return { title: 'Interrupt remapping', lines };
}

// ---- NIC and SIOM ------------------------------------------------------------------------

const reg = (vf: NicVf, name: string): number => vf.regs[name] ?? 0;

/** The VF table's header and rows: one line per VF, the ring registers in columns. */
export function vfRows(state: MachineState): string[] {
  const header = `  vf bdf     dom      mac               vlan spoof  TDH  TDT  RDH  RDT EICR`;
  const rows = state.io.vfs.map((vf) => [
    `  ${String(vf.vf).padEnd(2)} ${pciBdfFormat(vf.bdf)} ${domName(state, vf.dom).padEnd(8).slice(0, 8)} ${vf.mac.padEnd(17)}`,
    `${String(vf.vlan).padStart(4)} ${onOff(vf.spoofcheck).padEnd(5)}`,
    ['VFTDH', 'VFTDT', 'VFRDH', 'VFRDT'].map((r) => String(reg(vf, r)).padStart(4)).join(' '),
    hexShort(reg(vf, 'VFEICR')),
  ].join(' '));
  return [header, ...rows];
}

function nicHeader(state: MachineState): string {
  const pf = pciFunctionAt(state.io.pci, NIC_PF_BDF);
  const id = pciIdentityOf(state.io.pci, NIC_PF_BDF);
  const identity = id ? `${id.vendorId.toString(16).padStart(4, '0')}:${id.deviceId.toString(16).padStart(4, '0')}` : 'absent';
  const total = pf?.sriov ? pciGetLe(pf.config, pf.sriov.capOffset + PCI_SRIOV_TOTAL_VF, 2) : 0;
  const enabled = pf ? pciSriovVfCount(pf) : 0;
  // dom0's backend carries the guests' I/O only in vanilla; through SIOM its state does not matter.
  const path = state.profile === 'secure' ? 'path SIOM' : `path netback (${state.io.netbackUp ? 'up' : 'down'})`;
  return `NIC ${pciBdfFormat(NIC_PF_BDF)} ${identity}  VFs ${enabled}/${total} enabled, ${state.io.vfs.length} configured  ${path}`;
}

function depths(state: MachineState, buffers: ReadonlyMap<DomainId, number>): string {
  const entries = [...buffers].sort(([a], [b]) => a - b).map(([dom, n]) => `${domName(state, dom)} ${n}`);
  return entries.length > 0 ? entries.join(', ') : 'empty';
}

export function nicSection(state: MachineState, _width: number, theme: Theme): IoSection {
  const io = state.io;
  const lines: Line[] = [line(nicHeader(state), io.netbackUp || state.profile === 'secure' ? undefined : accent(theme, 'problem'))];
  if (io.vfs.length > 0) lines.push(...vfRows(state).map((text) => line(text)));
  else lines.push(line('  no VF configured', accent(theme, 'dim')));
  lines.push(line(`  SIOM buffers  tx: ${depths(state, io.siom.tx)}  rx: ${depths(state, io.siom.rx)}`));
  return { title: 'NIC / SIOM', lines };
}

// ---- sharing the rows --------------------------------------------------------------------

/**
 * Rows per section: every need when they all fit; else sections that need less than an
 * equal share keep their need and the others split what is left (earlier ones get the
 * odd rows). Every section gets at least one row when there are rows for it.
 */
export function allocateRows(needs: readonly number[], rows: number): number[] {
  const given = needs.map(() => 0);
  let open = needs.map((_, i) => i).filter((i) => needs[i] > 0);
  let left = rows;
  while (open.length > 0 && left > 0) {
    const share = Math.floor(left / open.length);
    const small = open.filter((i) => needs[i] - given[i] <= share);
    if (small.length === 0) {
      const extra = left - share * open.length;
      open.forEach((i, k) => { given[i] += share + (k < extra ? 1 : 0); });
      break;
    }
    for (const i of small) { left -= needs[i] - given[i]; given[i] = needs[i]; }
    open = open.filter((i) => !small.includes(i));
  }
  return given;
}

/** A section cut to `rows`: its last row says how many lines did not fit. */
export function cutSection(lines: readonly Line[], rows: number, theme: Theme): Line[] {
  if (lines.length <= rows) return [...lines];
  if (rows <= 1) return lines.slice(0, rows);
  const shown = lines.slice(0, rows - 1);
  return [...shown, line(`  ... ${lines.length - shown.length} more lines (j/k in the io pane scrolls)`, accent(theme, 'dim'))];
}

function ioSections(state: MachineState, width: number, theme: Theme): IoSection[] {
  return [iommuSection(state, width, theme), interruptSection(state, width, theme), nicSection(state, width, theme)];
}

/** Every section in full, a blank line between them. */
export function ioAllLines(state: MachineState, width: number, theme: Theme): Line[] {
  return ioSections(state, width, theme).flatMap((s, i) => (i === 0 ? s.lines : [[], ...s.lines]));
}

/**
 * The I/O pane: the lines to draw in `rows` rows. Scrolled to 0 (the overview) every
 * section gets a share of the rows; scrolled to N > 0, the sections in full from line N-1.
 */
export function ioLines(state: MachineState, width: number, rows: number, theme: Theme, scroll = 0): Line[] {
  const all = ioAllLines(state, width, theme);
  if (all.length <= rows) return all;
  if (scroll > 0) {
    const top = Math.min(scroll - 1, all.length - rows);
    return all.slice(top, top + rows);
  }
  const sections = ioSections(state, width, theme);
  const given = allocateRows(sections.map((s) => s.lines.length), rows);
  return sections.flatMap((s, i) => cutSection(s.lines, given[i], theme));
}
