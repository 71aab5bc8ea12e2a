/**
 * The VT-d unit's register file (spec 11.4) as software sees it through MMIO: reads compose
 * register values from the state; writes return effects, like every other function of the
 * unit. The hypervisor model programs the unit only through these, as a driver would.
 *
 * 64-bit registers accept 8-byte accesses and, except the command registers (CCMD,
 * IOTLB_REG), 4-byte accesses to either half. Writes to read-only or unknown offsets are
 * software errors the unit logs and ignores.
 */
import { assert } from '../../../events/errors.ts';
import {
  DMAR_CAP_REG, DMAR_CCMD_REG, DMAR_ECAP_REG, DMAR_FECTL_REG, DMAR_FEADDR_REG, DMAR_FEDATA_REG,
  DMAR_FEUADDR_REG, DMAR_FRCD_REG_OFFSET, DMAR_FRCD_REG_SIZE, DMAR_FSTS_REG, DMAR_GCMD_REG, DMAR_GSTS_REG,
  DMAR_ICS_REG, DMAR_IEADDR_REG, DMAR_IECTL_REG, DMAR_IEDATA_REG, DMAR_IEUADDR_REG, DMAR_IOTLB_REG,
  DMAR_IQA_REG, DMAR_IQH_REG, DMAR_IQT_REG, DMAR_IRTA_REG, DMAR_IVA_REG, DMAR_RTADDR_REG, DMAR_VER_REG,
  VTD_ADDRESS_MASK, VTD_CAP, VTD_CCMD_CAIG_SHIFT, VTD_CCMD_CIRG_SHIFT, VTD_CCMD_FM_SHIFT, VTD_CCMD_ICC,
  VTD_CCMD_SID_SHIFT, VTD_ECAP, VTD_FECTL_IM, VTD_FECTL_IP, VTD_FRCD_F, VTD_FRCD_FI_SHIFT,
  VTD_FRCD_FR_SHIFT, VTD_FRCD_T, VTD_FSTS_W1C, VTD_GCMD_CFI, VTD_GCMD_EAFL, VTD_GCMD_IRE, VTD_GCMD_QIE,
  VTD_GCMD_SFL, VTD_GCMD_SIRTP, VTD_GCMD_SRTP, VTD_GCMD_TE, VTD_GCMD_WBF, VTD_GSTS_CFIS, VTD_GSTS_IRES,
  VTD_GSTS_IRTPS, VTD_GSTS_QIES, VTD_GSTS_RTPS, VTD_GSTS_TES, VTD_ICS_IWC,
  VTD_IOTLB_DID_SHIFT, VTD_IOTLB_DOMAIN, VTD_IOTLB_IAIG_SHIFT, VTD_IOTLB_IIRG_SHIFT, VTD_IOTLB_IVT,
  VTD_IOTLB_PAGE, VTD_IQA_DW, VTD_IQA_QS_MASK, VTD_IQ_INDEX_MASK, VTD_IRTA_EIME, VTD_IRTA_S_MASK,
  VTD_IVA_AM_MASK, VTD_MAMV, VTD_VERSION,
} from './vtd-internal.ts';
import { vtdRunQueue } from './vtd-invalidation.ts';
import { VtdTransaction, type PhysicalMemory, type VtdEffect, type VtdRegisterName, type VtdState } from './vtd-state.ts';
import { vtdClearFault, vtdFaultStatus } from './vtd.ts';

const U32 = 0xffff_ffffn;

interface WriteContext {
  txn: VtdTransaction;
  memory: PhysicalMemory;
}

interface Register64 {
  read(state: VtdState): bigint;
  /** Absent: read-only. `halves` false: only 8-byte writes take effect. */
  write?(ctx: WriteContext, value: bigint): void;
  halves?: boolean;
}

interface Register32 {
  read(state: VtdState): number;
  write?(ctx: WriteContext, value: number): void;
}

function vtdSet(ctx: WriteContext, name: VtdRegisterName, value: number): void {
  if (ctx.txn.state.regs[name] !== value) ctx.txn.emit({ kind: 'reg', name, value });
}

function vtdLog(ctx: WriteContext, message: string): void {
  ctx.txn.emit({ kind: 'log', message });
}

/** A plain read/write register holding `mask` bits. */
function vtdPlain64(name: VtdRegisterName, mask: bigint): Register64 {
  return { read: (s) => BigInt(s.regs[name]), write: (ctx, v) => vtdSet(ctx, name, Number(v & mask)), halves: true };
}
function vtdPlain32(name: VtdRegisterName, mask = 0xffff_ffff): Register32 {
  return { read: (s) => s.regs[name], write: (ctx, v) => vtdSet(ctx, name, (v & mask) >>> 0) };
}

/** GCMD (spec 11.4.4): one command at a time; TE, QIE, IRE, CFI are levels, SRTP and SIRTP one-shots. */
function vtdGcmdWrite(ctx: WriteContext, value: number): void {
  const regs = ctx.txn.state.regs;
  let gsts = regs.gsts;
  const level = (status: number, on: boolean): void => {
    gsts = on ? gsts | status : gsts & ~status;
  };
  level(VTD_GSTS_TES, (value & VTD_GCMD_TE) !== 0);
  level(VTD_GSTS_IRES, (value & VTD_GCMD_IRE) !== 0);
  level(VTD_GSTS_CFIS, (value & VTD_GCMD_CFI) !== 0);
  if ((value & VTD_GCMD_SRTP) !== 0) {
    vtdSet(ctx, 'rootTable', regs.rtaddr);
    gsts |= VTD_GSTS_RTPS;
  }
  if ((value & VTD_GCMD_SIRTP) !== 0) {
    vtdSet(ctx, 'irtaActive', regs.irta);
    gsts |= VTD_GSTS_IRTPS;
  }
  const qiWasOn = (regs.gsts & VTD_GSTS_QIES) !== 0;
  const qiOn = (value & VTD_GCMD_QIE) !== 0;
  if (qiWasOn && !qiOn) {
    if (regs.iqh !== regs.iqt) vtdLog(ctx, 'queued invalidation disabled with descriptors pending');
    vtdSet(ctx, 'iqh', 0);
  }
  level(VTD_GSTS_QIES, qiOn);
  if ((value & (VTD_GCMD_SFL | VTD_GCMD_EAFL | VTD_GCMD_WBF)) !== 0) vtdLog(ctx, 'GCMD: SFL, EAFL and WBF are not supported');
  vtdSet(ctx, 'gsts', gsts >>> 0);
  if (qiOn && !qiWasOn) vtdRunQueue(ctx.txn, ctx.memory);
}

/** CCMD (spec 11.4.8.1): a register-based context-cache invalidation, complete at once. */
function vtdCcmdWrite(ctx: WriteContext, value: bigint): void {
  if ((value & VTD_CCMD_ICC) === 0n) return;
  if ((ctx.txn.state.regs.gsts & VTD_GSTS_QIES) !== 0) return vtdLog(ctx, 'CCMD written while queued invalidation is enabled');
  const granularity = Number((value >> VTD_CCMD_CIRG_SHIFT) & 3n);
  if (granularity === 0) {
    vtdLog(ctx, 'CCMD with granularity 0');
  } else {
    const invalidation = {
      granularity, did: Number(value & 0xffffn), sid: Number((value >> VTD_CCMD_SID_SHIFT) & 0xffffn), fm: Number((value >> VTD_CCMD_FM_SHIFT) & 3n),
    };
    ctx.txn.emit({ kind: 'context-cache.invalidate', invalidation });
  }
  vtdSet(ctx, 'ccmdCaig', granularity);
}

/**
 * IOTLB_REG (spec 11.4.8.2): a register-based IOTLB invalidation, complete at once. A
 * page-selective one takes address and AM from IVA; with AM above MAMV the unit invalidates
 * the whole domain instead and says so in IAIG, as the spec allows.
 */
function vtdIotlbRegWrite(ctx: WriteContext, value: bigint): void {
  if ((value & VTD_IOTLB_IVT) === 0n) return;
  const regs = ctx.txn.state.regs;
  if ((regs.gsts & VTD_GSTS_QIES) !== 0) return vtdLog(ctx, 'IOTLB_REG written while queued invalidation is enabled');
  let granularity = Number((value >> VTD_IOTLB_IIRG_SHIFT) & 3n);
  const am = regs.ivaLow & VTD_IVA_AM_MASK;
  if (granularity === VTD_IOTLB_PAGE && am > VTD_MAMV) granularity = VTD_IOTLB_DOMAIN;
  if (granularity === 0) {
    vtdLog(ctx, 'IOTLB_REG with granularity 0');
  } else {
    const did = Number((value >> VTD_IOTLB_DID_SHIFT) & 0xffffn);
    ctx.txn.emit({ kind: 'iotlb.invalidate', invalidation: { granularity, did, address: regs.ivaAddress, am } });
  }
  vtdSet(ctx, 'iotlbIaig', granularity);
}

/** FECTL / IECTL: clearing IM sends an interrupt left pending (IP) while it was masked. */
function vtdEventControlWrite(ctx: WriteContext, name: 'fectl' | 'iectl', value: number): void {
  const old = ctx.txn.state.regs[name];
  const masked = (value & VTD_FECTL_IM) !== 0;
  if (!masked && (old & VTD_FECTL_IP) !== 0) {
    const regs = ctx.txn.state.regs;
    const fault = name === 'fectl';
    ctx.txn.emit({
      kind: 'interrupt', cause: fault ? 'fault-event' : 'invalidation-completion',
      address: fault ? regs.feaddr : regs.ieaddr, data: fault ? regs.fedata : regs.iedata,
    });
    return vtdSet(ctx, name, 0);
  }
  vtdSet(ctx, name, ((old & VTD_FECTL_IP) | (masked ? VTD_FECTL_IM : 0)) >>> 0);
}

/** The high half of fault recording register `index`: software writes F = 1 to clear it. */
function vtdFrcdHigh(state: VtdState, index: number): bigint {
  const r = state.frcd[index];
  return (r.f ? VTD_FRCD_F : 0n) | (r.t ? VTD_FRCD_T : 0n) | (BigInt(r.fr) << VTD_FRCD_FR_SHIFT) | BigInt(r.sid);
}

const REGISTERS_64 = new Map<number, Register64>([
  [DMAR_VER_REG, { read: () => VTD_VERSION }],
  [DMAR_CAP_REG, { read: () => VTD_CAP }],
  [DMAR_ECAP_REG, { read: () => VTD_ECAP }],
  [DMAR_RTADDR_REG, vtdPlain64('rtaddr', VTD_ADDRESS_MASK)],
  [DMAR_CCMD_REG, { read: (s) => BigInt(s.regs.ccmdCaig) << VTD_CCMD_CAIG_SHIFT, write: vtdCcmdWrite }],
  [DMAR_IQH_REG, { read: (s) => BigInt(s.regs.iqh) }],
  [DMAR_IQT_REG, {
    read: (s) => BigInt(s.regs.iqt), halves: true,
    write: (ctx, v) => {
      vtdSet(ctx, 'iqt', Number(v & BigInt(VTD_IQ_INDEX_MASK)));
      vtdRunQueue(ctx.txn, ctx.memory);
    },
  }],
  [DMAR_IQA_REG, vtdPlain64('iqa', VTD_ADDRESS_MASK | BigInt(VTD_IQA_DW | VTD_IQA_QS_MASK))],
  [DMAR_IRTA_REG, vtdPlain64('irta', VTD_ADDRESS_MASK | BigInt(VTD_IRTA_EIME | VTD_IRTA_S_MASK))],
  [DMAR_IVA_REG, {
    read: (s) => BigInt(s.regs.ivaAddress) | BigInt(s.regs.ivaLow), halves: true,
    write: (ctx, v) => {
      vtdSet(ctx, 'ivaAddress', Number(v & ~0xfffn));
      vtdSet(ctx, 'ivaLow', Number(v & 0x7fn));
    },
  }],
  [DMAR_IOTLB_REG, { read: (s) => BigInt(s.regs.iotlbIaig) << VTD_IOTLB_IAIG_SHIFT, write: vtdIotlbRegWrite }],
]);

const REGISTERS_32 = new Map<number, Register32>([
  [DMAR_GCMD_REG, { read: () => 0, write: vtdGcmdWrite }],
  [DMAR_GSTS_REG, { read: (s) => s.regs.gsts }],
  [DMAR_FSTS_REG, { read: vtdFaultStatus, write: (ctx, v) => vtdSet(ctx, 'fsts', (ctx.txn.state.regs.fsts & ~(v & VTD_FSTS_W1C)) >>> 0) }],
  [DMAR_FECTL_REG, { read: (s) => s.regs.fectl, write: (ctx, v) => vtdEventControlWrite(ctx, 'fectl', v) }],
  [DMAR_FEDATA_REG, vtdPlain32('fedata')],
  [DMAR_FEADDR_REG, vtdPlain32('feaddr', 0xffff_fffc)],
  [DMAR_FEUADDR_REG, vtdPlain32('feuaddr')],
  [DMAR_ICS_REG, { read: (s) => s.regs.ics, write: (ctx, v) => vtdSet(ctx, 'ics', ctx.txn.state.regs.ics & ~(v & VTD_ICS_IWC)) }],
  [DMAR_IECTL_REG, { read: (s) => s.regs.iectl, write: (ctx, v) => vtdEventControlWrite(ctx, 'iectl', v) }],
  [DMAR_IEDATA_REG, vtdPlain32('iedata')],
  [DMAR_IEADDR_REG, vtdPlain32('ieaddr', 0xffff_fffc)],
  [DMAR_IEUADDR_REG, vtdPlain32('ieuaddr')],
]);

/** The fault recording register an offset falls in, and the byte offset inside it. */
function vtdFrcdAt(offset: number, state: VtdState): { index: number; within: number } | undefined {
  const index = Math.floor((offset - DMAR_FRCD_REG_OFFSET) / DMAR_FRCD_REG_SIZE);
  if (offset < DMAR_FRCD_REG_OFFSET || index >= state.frcd.length) return undefined;
  return { index, within: offset - DMAR_FRCD_REG_OFFSET - index * DMAR_FRCD_REG_SIZE };
}

function vtdRead32(state: VtdState, offset: number): number {
  const r32 = REGISTERS_32.get(offset);
  if (r32 !== undefined) return r32.read(state) >>> 0;
  const base = offset - (offset % 8);
  const shift = BigInt((offset % 8) * 8);
  const r64 = REGISTERS_64.get(base);
  if (r64 !== undefined) return Number((r64.read(state) >> shift) & U32);
  const frcd = vtdFrcdAt(base, state);
  if (frcd === undefined) return 0;
  const word = frcd.within === 0 ? BigInt(state.frcd[frcd.index].fi) << VTD_FRCD_FI_SHIFT : vtdFrcdHigh(state, frcd.index);
  return Number((word >> shift) & U32);
}

function vtdCheckAccess(offset: number, size: number): void {
  assert(size === 4 || size === 8, () => `VT-d register access of ${size} bytes`);
  assert(Number.isInteger(offset) && offset >= 0 && offset % size === 0, () => `unaligned VT-d register access at ${offset}`);
}

/** Reads a register as software would (4 or 8 bytes, naturally aligned; unknown offsets read 0). */
export function vtdRegisterRead(state: VtdState, offset: number, size: 4 | 8): bigint {
  vtdCheckAccess(offset, size);
  const low = BigInt(vtdRead32(state, offset));
  return size === 4 ? low : low | (BigInt(vtdRead32(state, offset + 4)) << 32n);
}

function vtdWrite32(ctx: WriteContext, offset: number, value: number): void {
  const r32 = REGISTERS_32.get(offset);
  if (r32 !== undefined) {
    if (r32.write === undefined) return vtdLog(ctx, `write to read-only register 0x${offset.toString(16)}`);
    return r32.write(ctx, value >>> 0);
  }
  const base = offset - (offset % 8);
  const r64 = REGISTERS_64.get(base);
  if (r64 !== undefined) {
    if (r64.write === undefined || !r64.halves) return vtdLog(ctx, `4-byte write to register 0x${base.toString(16)} ignored`);
    const shift = BigInt((offset % 8) * 8);
    const merged = (r64.read(ctx.txn.state) & ~(U32 << shift)) | (BigInt(value >>> 0) << shift);
    return r64.write(ctx, merged);
  }
  const frcd = vtdFrcdAt(base, ctx.txn.state);
  if (frcd !== undefined && frcd.within === 8 && offset % 8 === 4) {
    if ((value & 0x8000_0000) !== 0) ctx.txn.emitAll(vtdClearFault(ctx.txn.state, frcd.index).effects);
    return;
  }
  vtdLog(ctx, `write to 0x${offset.toString(16)}, which holds no writable register`);
}

function vtdWrite64(ctx: WriteContext, offset: number, value: bigint): void {
  const r64 = REGISTERS_64.get(offset);
  if (r64 !== undefined) {
    if (r64.write === undefined) return vtdLog(ctx, `write to read-only register 0x${offset.toString(16)}`);
    return r64.write(ctx, value);
  }
  const frcd = vtdFrcdAt(offset, ctx.txn.state);
  if (frcd !== undefined && frcd.within === 8) {
    if ((value & VTD_FRCD_F) !== 0n) ctx.txn.emitAll(vtdClearFault(ctx.txn.state, frcd.index).effects);
    return;
  }
  // Two 32-bit registers side by side (GCMD/GSTS, FECTL/FEDATA, ...): low first.
  vtdWrite32(ctx, offset, Number(value & U32));
  vtdWrite32(ctx, offset + 4, Number((value >> 32n) & U32));
}

/**
 * Writes a register as software would (4 or 8 bytes, naturally aligned). Returns the effects;
 * a write to IQT (or enabling QI) also runs the invalidation queue, as hardware starts
 * fetching at once.
 */
export function vtdRegisterWrite(state: VtdState, memory: PhysicalMemory, offset: number, size: 4 | 8, value: bigint): { effects: VtdEffect[] } {
  vtdCheckAccess(offset, size);
  const ctx: WriteContext = { txn: new VtdTransaction(state), memory };
  const word = value & (size === 4 ? U32 : 0xffff_ffff_ffff_ffffn);
  if (size === 4) vtdWrite32(ctx, offset, Number(word));
  else vtdWrite64(ctx, offset, word);
  return { effects: ctx.txn.effects };
}

/**
 * The GCMD value a driver writes to change one command: the level commands now enabled
 * (GSTS TES, QIES, IRES, CFIS sit at GCMD's TE, QIE, IRE, CFI bits) with `command` added or
 * removed. The one-shots (SRTP, SIRTP) are never carried over.
 */
export function vtdGcmdWith(state: VtdState, command: number, on = true): number {
  const levels = state.regs.gsts & (VTD_GSTS_TES | VTD_GSTS_QIES | VTD_GSTS_IRES | VTD_GSTS_CFIS);
  return (on ? levels | command : levels & ~command) >>> 0;
}
