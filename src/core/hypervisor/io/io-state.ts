/**
 * The machine's I/O state: the PCI bus with the SR-IOV NIC, the VT-d unit and Xen's
 * bookkeeping of it, the NIC's virtual functions, SIOM's per-domain buffers and dom0's
 * network backend. Plain data, like the rest of the machine state.
 */
import type { DomainId, EventOf } from '../../../events/schema.ts';
import { vtdInitialState, type VtdState } from '../../hardware/iommu/index.ts';
import { parseFrame } from '../../hardware/nic/ethernet.ts';
import { sriovNicPf } from '../../hardware/nic/pf-config.ts';
import type { NicVf } from '../../hardware/nic/vf.ts';
import { pciBusCreate, type PciBus } from '../../hardware/pci/index.ts';
import type { MachineConfig } from '../config.ts';

export type { NicVf };

/** Xen's IOMMU driver state: where its tables are and what it has programmed. */
export interface XenVtd {
  /** DMA and interrupt remapping are on (secure profile). */
  enabled: boolean;
  /** Host addresses of the root table, the interrupt remapping table, the invalidation queue. */
  rootTable: number;
  irt: number;
  iq: number;
  /** The next free slot of the invalidation queue (IQT, in descriptors). */
  iqTail: number;
  /** Context tables by bus number (host address). */
  contextTables: Map<number, number>;
  /** Xen frames set aside for IOMMU tables and not in use, lowest first. */
  freeFrames: number[];
  /** IOMMU domains: the second-level tables Xen built for a guest. */
  domains: Map<DomainId, { did: number; slptptr: number; frames: number[] }>;
  /** Which domain each assigned device (routing id) belongs to. */
  devices: Map<number, DomainId>;
  /** Interrupt remapping table entries Xen wrote, by index. */
  irtes: Map<number, { sid: number; dom: DomainId; vcpu: number; vector: number }>;
}

export interface IoState {
  pci: PciBus;
  /** Each guest's CONFIG_ADDRESS latch (its virtual PCI bus), by domain. */
  cf8: Map<DomainId, number>;
  vtd: VtdState;
  xenVtd: XenVtd;
  vfs: NicVf[];
  /** SIOM: frames waiting in each domain's tx and rx buffers. */
  siom: { tx: Map<DomainId, number>; rx: Map<DomainId, number> };
  /** dom0's network backend runs (vanilla's I/O path). */
  netbackUp: boolean;
  /** Index of the next frame from the wire (config.network.wire). */
  wireNext: number;
  /**
   * Where the frame on its way through the switch entered it: a VF (by number) or the wire,
   * and the 802.1Q tag it carried there (0: untagged). What the VLAN oracle reads, rather
   * than the VLAN the device reports with a delivered frame.
   */
  ingress: { port: number | 'wire'; tag: number } | null;
}

/** Routing id of the NIC's PF (02:00.0). */
export const NIC_PF_BDF = 2 << 8;
/** Xen frames 64..255 hold IOMMU tables (frames below 256 are never given to domains). */
export const VTD_TABLE_FRAMES = { first: 64, end: 256 } as const;

export function initialIoState(config: MachineConfig): IoState {
  const totalVfs = Math.max(1, config.network.vfs);
  return {
    pci: pciBusCreate([sriovNicPf({ bdf: NIC_PF_BDF, totalVfs })]),
    cf8: new Map(),
    vtd: vtdInitialState(),
    xenVtd: {
      enabled: false, rootTable: -1, irt: -1, iq: -1, iqTail: 0, contextTables: new Map(),
      freeFrames: Array.from({ length: VTD_TABLE_FRAMES.end - VTD_TABLE_FRAMES.first }, (_, i) => VTD_TABLE_FRAMES.first + i),
      domains: new Map(), devices: new Map(), irtes: new Map(),
    },
    vfs: [],
    siom: { tx: new Map(), rx: new Map() },
    netbackUp: true,
    wireNext: 0,
    ingress: null,
  };
}

const VF_TX = /^vf(\d+)\.tx$/;

/** net.frame: a frame a VF sent, or one from the wire, is the one the switch now carries. */
export function applyNetFrame(io: IoState, e: EventOf<'net.frame'>): void {
  if (e.at === 'wire.in') io.ingress = { port: 'wire', tag: parseFrame(e.frame)?.vlan ?? 0 };
  else if (e.verdict === 'ok' && e.at.endsWith('.tx')) {
    const vf = VF_TX.exec(e.at);
    if (vf !== null) io.ingress = { port: Number(vf[1]), tag: parseFrame(e.frame)?.vlan ?? 0 };
  }
}
