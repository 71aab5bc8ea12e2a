/**
 * Register and bit names of the Intel VT-d remapping hardware (Intel Virtualization
 * Technology for Directed I/O, Architecture Specification, chapters 9 and 11), the header of
 * the device in `vtd.ts`. Names follow the spec (and QEMU's intel_iommu_internal.h, which
 * follows the spec too) so the code can be held against it.
 *
 * The model implements legacy (not scalable) mode: 128-bit root and context entries,
 * second-level translation only, 128-bit invalidation descriptors, remapped (not posted)
 * interrupts.
 *
 * 64-bit words (table entries, descriptors, 64-bit registers) are bigints everywhere; the
 * fields decoded from them are numbers. Every address the model handles stays below
 * 2^53 (host addresses below 2^VTD_HAW, IOVAs checked against the MGAW), so numbers hold
 * them exactly.
 */

// ---- what this implementation supports (CAP_REG / ECAP_REG) -------------------------

/** Host address width: address bits [HAW-1:12] of entries; bits [51:HAW] are reserved. */
export const VTD_HAW = 46;
/** Maximum guest address width (CAP.MGAW + 1): IOVAs at or above 2^48 fault with 0x4. */
export const VTD_MGAW = 48;
/** Supported adjusted guest address widths (CAP.SAGAW): bit 1 = 39-bit (3-level), bit 2 = 48-bit (4-level). */
export const VTD_SAGAW = 0b00110;
/** Number of fault recording registers (CAP.NFR + 1). */
export const VTD_FRCD_COUNT = 4;
/** Maximum address mask value for page-selective IOTLB invalidation (CAP.MAMV). */
export const VTD_MAMV = 18;
/** Bounds of the caches; the oldest entry is evicted first (deterministic FIFO). */
export const VTD_IOTLB_MAX_ENTRIES = 1024;
export const VTD_CONTEXT_CACHE_MAX_ENTRIES = 256;
export const VTD_IEC_MAX_ENTRIES = 256;

export const VTD_PAGE_SHIFT = 12;
export const VTD_PAGE_SIZE = 4096;
/** Second-level tables: 512 entries of 8 bytes, 9 address bits a level. */
export const VTD_SL_LEVEL_BITS = 9;
export const VTD_SL_ENTRIES = 512;

// ---- register offsets (spec 10.4) ----------------------------------------------------

export const DMAR_VER_REG = 0x000;
export const DMAR_CAP_REG = 0x008;
export const DMAR_ECAP_REG = 0x010;
export const DMAR_GCMD_REG = 0x018;
export const DMAR_GSTS_REG = 0x01c;
export const DMAR_RTADDR_REG = 0x020;
export const DMAR_CCMD_REG = 0x028;
export const DMAR_FSTS_REG = 0x034;
export const DMAR_FECTL_REG = 0x038;
export const DMAR_FEDATA_REG = 0x03c;
export const DMAR_FEADDR_REG = 0x040;
export const DMAR_FEUADDR_REG = 0x044;
export const DMAR_IQH_REG = 0x080;
export const DMAR_IQT_REG = 0x088;
export const DMAR_IQA_REG = 0x090;
export const DMAR_ICS_REG = 0x09c;
export const DMAR_IECTL_REG = 0x0a0;
export const DMAR_IEDATA_REG = 0x0a4;
export const DMAR_IEADDR_REG = 0x0a8;
export const DMAR_IEUADDR_REG = 0x0ac;
export const DMAR_IRTA_REG = 0x0b8;
/** IOTLB registers at ECAP.IRO * 16: the invalidate-address register, then IOTLB_REG. */
export const DMAR_IVA_REG = 0x200;
export const DMAR_IOTLB_REG = 0x208;
/** Fault recording registers at CAP.FRO * 16, 16 bytes each. */
export const DMAR_FRCD_REG_OFFSET = 0x220;
export const DMAR_FRCD_REG_SIZE = 16;
/** The register file's size: everything at or above is not a register. */
export const DMAR_REG_SIZE = DMAR_FRCD_REG_OFFSET + VTD_FRCD_COUNT * DMAR_FRCD_REG_SIZE;

/** Version 1.0. */
export const VTD_VERSION = 0x10n;

/** CAP_REG (spec 11.4.2), as this implementation reports it. */
export const VTD_CAP =
  6n /* ND: 16-bit domain ids */ |
  (BigInt(VTD_SAGAW) << 8n) |
  (BigInt(VTD_MGAW - 1) << 16n) |
  (BigInt(DMAR_FRCD_REG_OFFSET / 16) << 24n) /* FRO */ |
  (0b11n << 34n) /* SLLPS: 2 MiB and 1 GiB pages */ |
  (1n << 39n) /* PSI */ |
  (BigInt(VTD_FRCD_COUNT - 1) << 40n) /* NFR */ |
  (BigInt(VTD_MAMV) << 48n);

/** ECAP_REG (spec 11.4.3): QI, DT, IR, EIM, PT; no snoop control (so SNP is reserved). */
export const VTD_ECAP =
  (1n << 1n) /* QI */ |
  (1n << 2n) /* DT: device-TLB */ |
  (1n << 3n) /* IR */ |
  (1n << 4n) /* EIM */ |
  (1n << 6n) /* PT: pass-through */ |
  (BigInt(DMAR_IVA_REG / 16) << 8n); /* IRO */

// ---- GCMD_REG / GSTS_REG (spec 11.4.4, 11.4.5): same bit positions ---------------------

export const VTD_GCMD_TE = 0x8000_0000;
export const VTD_GCMD_SRTP = 0x4000_0000;
export const VTD_GCMD_SFL = 0x2000_0000;
export const VTD_GCMD_EAFL = 0x1000_0000;
export const VTD_GCMD_WBF = 0x0800_0000;
export const VTD_GCMD_QIE = 0x0400_0000;
export const VTD_GCMD_IRE = 0x0200_0000;
export const VTD_GCMD_SIRTP = 0x0100_0000;
export const VTD_GCMD_CFI = 0x0080_0000;

export const VTD_GSTS_TES = 0x8000_0000;
export const VTD_GSTS_RTPS = 0x4000_0000;
export const VTD_GSTS_QIES = 0x0400_0000;
export const VTD_GSTS_IRES = 0x0200_0000;
export const VTD_GSTS_IRTPS = 0x0100_0000;
export const VTD_GSTS_CFIS = 0x0080_0000;

// ---- FSTS_REG, FECTL_REG, ICS_REG, IECTL_REG (spec 11.4.7, 11.4.9) ---------------------

/** Primary fault overflow: a fault arrived while its recording register was still full. */
export const VTD_FSTS_PFO = 1 << 0;
/** Primary pending fault: some fault recording register has F set (read-only, derived). */
export const VTD_FSTS_PPF = 1 << 1;
/** Invalidation queue error. */
export const VTD_FSTS_IQE = 1 << 4;
/** Invalidation completion error, invalidation time-out error (device-TLB; never set here). */
export const VTD_FSTS_ICE = 1 << 5;
export const VTD_FSTS_ITE = 1 << 6;
/** Fault record index [15:8]: the first pending fault recording register. */
export const VTD_FSTS_FRI_SHIFT = 8;
export const VTD_FSTS_FRI_MASK = 0xff << VTD_FSTS_FRI_SHIFT;
/** FSTS bits software clears by writing 1. */
export const VTD_FSTS_W1C = VTD_FSTS_PFO | VTD_FSTS_IQE | VTD_FSTS_ICE | VTD_FSTS_ITE;

/** FECTL / IECTL: interrupt mask, interrupt pending. */
export const VTD_FECTL_IM = 0x8000_0000;
export const VTD_FECTL_IP = 0x4000_0000;
export const VTD_IECTL_IM = VTD_FECTL_IM;
export const VTD_IECTL_IP = VTD_FECTL_IP;
/** ICS: invalidation wait descriptor complete. */
export const VTD_ICS_IWC = 1;

// ---- CCMD_REG (spec 11.4.8.1) ---------------------------------------------------------

export const VTD_CCMD_ICC = 1n << 63n;
export const VTD_CCMD_CIRG_SHIFT = 61n;
export const VTD_CCMD_CAIG_SHIFT = 59n;
export const VTD_CCMD_FM_SHIFT = 32n;
export const VTD_CCMD_SID_SHIFT = 16n;

/** Context-cache invalidation granularities (CIRG, and G of the descriptor). */
export const VTD_CC_GLOBAL = 1;
export const VTD_CC_DOMAIN = 2;
export const VTD_CC_DEVICE = 3;

// ---- IOTLB_REG and IVA_REG (spec 11.4.8.2, 11.4.8.3) ----------------------------------

export const VTD_IOTLB_IVT = 1n << 63n;
export const VTD_IOTLB_IIRG_SHIFT = 60n;
export const VTD_IOTLB_IAIG_SHIFT = 57n;
export const VTD_IOTLB_DR = 1n << 49n;
export const VTD_IOTLB_DW = 1n << 48n;
export const VTD_IOTLB_DID_SHIFT = 32n;
export const VTD_IVA_IH = 1 << 6;
export const VTD_IVA_AM_MASK = 0x3f;

/** IOTLB invalidation granularities (IIRG, and G of the descriptor). */
export const VTD_IOTLB_GLOBAL = 1;
export const VTD_IOTLB_DOMAIN = 2;
export const VTD_IOTLB_PAGE = 3;

// ---- IQA/IQH/IQT and IRTA (spec 11.4.9, 11.4.10) --------------------------------------

/** IQA: descriptor width bit 11 (0 = 128-bit), queue size [2:0] = 2^QS pages. */
export const VTD_IQA_DW = 1 << 11;
export const VTD_IQA_QS_MASK = 0x7;
/** IQH/IQT hold the descriptor index in bits [18:4]. */
export const VTD_IQ_INDEX_SHIFT = 4;
export const VTD_IQ_INDEX_MASK = 0x7fff << VTD_IQ_INDEX_SHIFT;
/** 128-bit descriptors: 256 in each 4 KiB page of the queue. */
export const VTD_IQ_DESCRIPTORS_PER_PAGE = 256;

/** IRTA: extended interrupt mode enable bit 11, size [3:0] = 2^(S+1) entries. */
export const VTD_IRTA_EIME = 1 << 11;
export const VTD_IRTA_S_MASK = 0xf;

// ---- fault recording registers (spec 11.4.11) -----------------------------------------

/** High 64 bits of an FRCD: F 127, T 126, FR [103:96], SID [79:64]. */
export const VTD_FRCD_F = 1n << 63n;
export const VTD_FRCD_T = 1n << 62n;
export const VTD_FRCD_FR_SHIFT = 32n;
/** Low 64 bits: FI [63:12]; for interrupt-remapping faults the index is FI[63:48]. */
export const VTD_FRCD_FI_SHIFT = 12n;
/** Where an interrupt index sits in the FI field (bits 63:48 of the low word). */
export const VTD_FRCD_FI_IR_INDEX_SHIFT = 36;

// ---- root and context entries (spec 9.1, 9.3) ----------------------------------------

export const VTD_ROOT_ENTRY_SIZE = 16;
export const VTD_CONTEXT_ENTRY_SIZE = 16;
export const VTD_ROOT_ENTRY_P = 1n;
/** Root entry low: bits [11:1] reserved; the whole high word is reserved in legacy mode. */
export const VTD_ROOT_ENTRY_RSVD_LO = 0xffen;

export const VTD_CONTEXT_ENTRY_P = 1n;
export const VTD_CONTEXT_ENTRY_FPD = 1n << 1n;
export const VTD_CONTEXT_ENTRY_TT_SHIFT = 2n;
/** Context entry low: bits [11:4] reserved (plus address bits at or above the HAW). */
export const VTD_CONTEXT_ENTRY_RSVD_LO = 0xff0n;
/** Context entry high: AW [2:0], ignored [6:3], reserved 7, DID [23:8], reserved [63:24]. */
export const VTD_CONTEXT_ENTRY_RSVD_HI = 0xffff_ffff_ff00_0080n;
export const VTD_CONTEXT_ENTRY_DID_SHIFT = 8n;

/** Translation types (context entry TT). */
export const VTD_TT_MULTI_LEVEL = 0;
export const VTD_TT_DEVICE_TLB = 1;
export const VTD_TT_PASS_THROUGH = 2;

// ---- second-level paging entries (spec 9.8) -------------------------------------------

export const VTD_SL_R = 1n;
export const VTD_SL_W = 2n;
export const VTD_SL_PS = 1n << 7n;
/** Snoop behaviour: reserved here, since ECAP.SC = 0. */
export const VTD_SL_SNP = 1n << 11n;
/** Transient mapping (leaf only; allowed since ECAP.DT = 1). */
export const VTD_SL_TM = 1n << 62n;
/** Address bits [HAW-1:12]. */
export const VTD_ADDRESS_MASK = ((1n << BigInt(VTD_HAW)) - 1n) & ~0xfffn;
/** Bits [51:HAW]: reserved in every entry that carries an address. */
export const VTD_ABOVE_HAW_RSVD = ((1n << 52n) - 1n) & ~((1n << BigInt(VTD_HAW)) - 1n);
/** Bits [63:HAW]: reserved in root and context entries, whose pointers span [63:12]. */
export const VTD_POINTER_RSVD = 0xffff_ffff_ffff_ffffn & ~((1n << BigInt(VTD_HAW)) - 1n);

// ---- interrupt remapping table entries (spec 9.10) ------------------------------------

export const VTD_IRTE_SIZE = 16;
export const VTD_IRTE_P = 1n;
export const VTD_IRTE_FPD = 1n << 1n;
export const VTD_IRTE_DM = 1n << 2n;
export const VTD_IRTE_RH = 1n << 3n;
export const VTD_IRTE_TM = 1n << 4n;
export const VTD_IRTE_DLM_SHIFT = 5n;
/** IRTE mode: 1 = posted; posted interrupts are not implemented, so it is reserved. */
export const VTD_IRTE_IM = 1n << 15n;
export const VTD_IRTE_VECTOR_SHIFT = 16n;
export const VTD_IRTE_DST_SHIFT = 32n;
/** Low word reserved: [14:12] and [31:24]; bits [11:8] are available to software. */
export const VTD_IRTE_RSVD_LO = 0xff00_7000n;
/** In xAPIC mode (IRTA.EIME = 0) only DST[15:8] (bits 47:40) hold the APIC id. */
export const VTD_IRTE_RSVD_LO_XAPIC = 0xffff_00ff_0000_0000n;
/** High word: SID [15:0], SQ [17:16], SVT [19:18], reserved [63:20]. */
export const VTD_IRTE_RSVD_HI = ~((1n << 20n) - 1n) & 0xffff_ffff_ffff_ffffn;
export const VTD_IRTE_SQ_SHIFT = 16n;
export const VTD_IRTE_SVT_SHIFT = 18n;
/** Delivery modes 011b and 110b are reserved. */
export const VTD_IRTE_DLM_RESERVED = [3, 6] as const;

/** Source validation types (IRTE SVT). */
export const VTD_SVT_NONE = 0;
export const VTD_SVT_ALL = 1;
export const VTD_SVT_BUS = 2;
/** SID masks by source-id qualifier SQ: ignore nothing, bit 2, bits 2:1, bits 2:0 (function bits). */
export const VTD_SQ_MASKS = [0xffff, 0xfffb, 0xfff9, 0xfff8] as const;

// ---- MSI address / data (spec 5.1.2, 5.1.5) -------------------------------------------

/** Interrupt requests are DMA writes to 0xFEEx_xxxx. */
export const VTD_MSI_ADDRESS_BASE = 0xfee0_0000;
export const VTD_MSI_ADDRESS_MASK = 0xfff0_0000;
/** Address bit 4: interrupt format (1 = remappable). */
export const VTD_MSI_ADDR_IF_REMAPPABLE = 1 << 4;
/** Address bit 3: subhandle valid. */
export const VTD_MSI_ADDR_SHV = 1 << 3;
/** Address bit 2: handle[15]; bits [19:5]: handle[14:0]. */
export const VTD_MSI_ADDR_HANDLE_15 = 1 << 2;
export const VTD_MSI_ADDR_HANDLE_SHIFT = 5;
/** Data [31:16] is reserved in a remappable request; [15:0] is the subhandle. */
export const VTD_MSI_DATA_RSVD = 0xffff_0000;

// ---- invalidation descriptors (spec 6.5.2) ---------------------------------------------

export const VTD_DESCRIPTOR_SIZE = 16;
export const VTD_INV_DESC_CC = 1;
export const VTD_INV_DESC_IOTLB = 2;
export const VTD_INV_DESC_DEVICE_TLB = 3;
export const VTD_INV_DESC_IEC = 4;
export const VTD_INV_DESC_WAIT = 5;
/** Type [3:0] and type[6:4] in bits [11:9] (non-zero only for scalable-mode types). */
export const VTD_INV_DESC_TYPE_MASK = 0xfn;
export const VTD_INV_DESC_TYPE_HI_MASK = 0xe00n;
export const VTD_INV_DESC_G_SHIFT = 4n;
/** Context-cache descriptor: G [5:4], DID [31:16], SID [47:32], FM [49:48]. */
export const VTD_INV_DESC_CC_RSVD_LO = 0xfffc_0000_0000_ffc0n;
/** IOTLB descriptor: G [5:4], DW 6, DR 7, DID [31:16]; high: AM [5:0], IH 6, ADDR [63:12]. */
export const VTD_INV_DESC_IOTLB_DW = 1n << 6n;
export const VTD_INV_DESC_IOTLB_DR = 1n << 7n;
export const VTD_INV_DESC_IOTLB_RSVD_LO = 0xffff_ffff_0000_ff00n;
export const VTD_INV_DESC_IOTLB_RSVD_HI = 0xf80n;
/** Interrupt-entry-cache descriptor: G bit 4 (1 = index-selective), IM [31:27], IIDX [47:32]. */
export const VTD_INV_DESC_IEC_G_INDEX = 1n << 4n;
export const VTD_INV_DESC_IEC_RSVD_LO = 0xffff_0000_07ff_ffe0n;
/** Wait descriptor: IF 4, SW 5, FN 6, PD 7, status data [63:32]; high: address [63:2]. */
export const VTD_INV_DESC_WAIT_IF = 1n << 4n;
export const VTD_INV_DESC_WAIT_SW = 1n << 5n;
export const VTD_INV_DESC_WAIT_FN = 1n << 6n;
export const VTD_INV_DESC_WAIT_PD = 1n << 7n;
export const VTD_INV_DESC_WAIT_RSVD_LO = 0xffff_ff00n;
export const VTD_INV_DESC_WAIT_RSVD_HI = 0x3n;

// ---- fault reasons (spec 7.1.3, Table "Unrecoverable fault conditions") -------------

/** Why a DMA request was blocked: the FR field of the fault record. */
export const DmarFaultReason = {
  /** 0x1: the root entry for the request's bus has P = 0. */
  ROOT_ENTRY_NOT_PRESENT: 0x1,
  /** 0x2: the context entry for the request's device/function has P = 0. */
  CONTEXT_ENTRY_NOT_PRESENT: 0x2,
  /** 0x3: invalid programming of a present context entry (AW not in SAGAW, TT reserved). */
  CONTEXT_ENTRY_INVALID: 0x3,
  /** 0x4: the address is above 2^X - 1, X the smaller of the MGAW and the context's AGAW. */
  ADDRESS_BEYOND_MGAW: 0x4,
  /** 0x5: a write where some second-level entry of the walk has W = 0 (or is not present). */
  WRITE_NOT_PERMITTED: 0x5,
  /** 0x6: a read where some second-level entry of the walk has R = 0 (or is not present). */
  READ_NOT_PERMITTED: 0x6,
  /** 0x7: reading a second-level paging entry failed (its address is outside memory). */
  SECOND_LEVEL_ENTRY_ACCESS_FAILED: 0x7,
  /** 0x8: reading the root entry failed (RTADDR points outside memory). */
  ROOT_ENTRY_ACCESS_FAILED: 0x8,
  /** 0x9: reading the context entry failed (the root entry's CTP points outside memory). */
  CONTEXT_ENTRY_ACCESS_FAILED: 0x9,
  /** 0xA: reserved bits set in a present root entry. */
  ROOT_ENTRY_RESERVED: 0xa,
  /** 0xB: reserved bits set in a present context entry. */
  CONTEXT_ENTRY_RESERVED: 0xb,
  /** 0xC: reserved bits set in a present second-level paging entry. */
  SECOND_LEVEL_ENTRY_RESERVED: 0xc,
  /** 0xD: a translated request (PCIe AT = 10b) blocked because TT is not device-TLB. */
  BLOCKED_BY_TRANSLATION_TYPE: 0xd,
} as const;
export type DmarFaultReason = (typeof DmarFaultReason)[keyof typeof DmarFaultReason];

/**
 * Faults the context entry's FPD may suppress ("qualified" in the spec): those found after a
 * context entry was read. Root-level faults and reserved context bits are always recorded.
 */
export const DMAR_QUALIFIED_FAULTS: ReadonlySet<number> = new Set([
  DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT, DmarFaultReason.CONTEXT_ENTRY_INVALID,
  DmarFaultReason.ADDRESS_BEYOND_MGAW, DmarFaultReason.WRITE_NOT_PERMITTED,
  DmarFaultReason.READ_NOT_PERMITTED, DmarFaultReason.SECOND_LEVEL_ENTRY_ACCESS_FAILED,
  DmarFaultReason.SECOND_LEVEL_ENTRY_RESERVED, DmarFaultReason.BLOCKED_BY_TRANSLATION_TYPE,
]);

/** Why an interrupt request was blocked (spec 7.1.3, interrupt-remapping faults). */
export const IrFaultReason = {
  /** 0x20: reserved field set in the interrupt request (remappable format, data[31:16]). */
  REQUEST_RESERVED_FIELD: 0x20,
  /** 0x21: the interrupt index exceeds the table size 2^(IRTA.S + 1). */
  INDEX_BEYOND_TABLE_SIZE: 0x21,
  /** 0x22: the IRTE has P = 0. */
  IRTE_NOT_PRESENT: 0x22,
  /** 0x23: reading the IRTE through IRTA failed (the "IR root table invalid" of QEMU). */
  IRT_ACCESS_FAILED: 0x23,
  /** 0x24: reserved field set in a present IRTE, or an invalid value (SVT 3, IM 1, DLM 3/6). */
  IRTE_RESERVED_FIELD: 0x24,
  /** 0x25: compatibility-format request while GSTS.CFIS = 0 or IRTA.EIME = 1. */
  COMPATIBILITY_FORMAT_BLOCKED: 0x25,
  /** 0x26: the requester's source id failed the IRTE's SVT/SQ/SID check. */
  SOURCE_ID_VALIDATION_FAILED: 0x26,
} as const;
export type IrFaultReason = (typeof IrFaultReason)[keyof typeof IrFaultReason];

/** Interrupt faults the IRTE's FPD may suppress: those found after the IRTE was read. */
export const IR_QUALIFIED_FAULTS: ReadonlySet<number> = new Set([
  IrFaultReason.IRTE_NOT_PRESENT, IrFaultReason.IRTE_RESERVED_FIELD,
  IrFaultReason.SOURCE_ID_VALIDATION_FAILED,
]);

const DMAR_NAMES = new Map<number, string>(Object.entries(DmarFaultReason).map(([n, v]) => [v, n]));
const IR_NAMES = new Map<number, string>(Object.entries(IrFaultReason).map(([n, v]) => [v, n]));

/** The spec name of a fault reason (DMA or interrupt), for logs. */
export function vtdFaultReasonName(reason: number): string {
  return DMAR_NAMES.get(reason) ?? IR_NAMES.get(reason) ?? `FAULT_${reason.toString(16)}`;
}
