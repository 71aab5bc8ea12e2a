/**
 * Register offsets and bit names of PCI configuration space, named as the PCI Local Bus
 * Specification 3.0 (chapter 6), the PCI Express Base Specification (7.5, 7.7 and 9.3,
 * "Single Root I/O Virtualization") and Linux's include/uapi/linux/pci_regs.h name them, so a
 * reader can hold the model against the spec. Offsets of capability registers are relative
 * to the capability's own offset.
 */

// ---- sizes ---------------------------------------------------------------------------------

/** Conventional configuration space, reachable through configuration mechanism #1. */
export const PCI_CONFIG_SPACE_SIZE = 0x100;
/** PCI Express extended configuration space (4 KiB per function). */
export const PCI_CFG_SPACE_EXP_SIZE = 0x1000;
/** The type 0 header occupies the first 64 bytes; capabilities live above it. */
export const PCI_STD_HEADER_SIZEOF = 0x40;

// ---- type 0 configuration header (PCI 3.0, 6.2) ----------------------------------------------

export const PCI_VENDOR_ID = 0x00; /* 16 bits, RO */
export const PCI_DEVICE_ID = 0x02; /* 16 bits, RO */
/** What a read of an absent function returns (a master abort completes with all ones). */
export const PCI_VENDOR_ID_NONE = 0xffff;

export const PCI_COMMAND = 0x04; /* 16 bits */
export const PCI_COMMAND_IO = 0x0001; /* respond to I/O space accesses */
export const PCI_COMMAND_MEMORY = 0x0002; /* respond to memory space accesses */
export const PCI_COMMAND_MASTER = 0x0004; /* bus master enable: may issue DMA and MSI writes */
export const PCI_COMMAND_SPECIAL = 0x0008; /* special cycles: hardwired 0 in PCIe */
export const PCI_COMMAND_INVALIDATE = 0x0010; /* memory write and invalidate: hardwired 0 in PCIe */
export const PCI_COMMAND_VGA_PALETTE = 0x0020; /* VGA palette snoop: hardwired 0 in PCIe */
export const PCI_COMMAND_PARITY = 0x0040; /* parity error response */
export const PCI_COMMAND_WAIT = 0x0080; /* IDSEL stepping: hardwired 0 */
export const PCI_COMMAND_SERR = 0x0100; /* SERR# enable */
export const PCI_COMMAND_FAST_BACK = 0x0200; /* fast back-to-back: hardwired 0 in PCIe */
export const PCI_COMMAND_INTX_DISABLE = 0x0400; /* INTx emulation disable */

export const PCI_STATUS = 0x06; /* 16 bits */
export const PCI_STATUS_INTERRUPT = 0x0008; /* INTx asserted, RO */
export const PCI_STATUS_CAP_LIST = 0x0010; /* a capability list is present, RO */
export const PCI_STATUS_66MHZ = 0x0020;
export const PCI_STATUS_FAST_BACK = 0x0080;
export const PCI_STATUS_PARITY = 0x0100; /* master data parity error, RW1C */
export const PCI_STATUS_DEVSEL_MASK = 0x0600;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x0800; /* RW1C */
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000; /* RW1C */
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000; /* RW1C */
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000; /* RW1C */
export const PCI_STATUS_DETECTED_PARITY = 0x8000; /* RW1C */
/** The error bits software clears by writing ones. */
export const PCI_STATUS_W1C_MASK =
  PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY;

export const PCI_REVISION_ID = 0x08; /* 8 bits, RO */
export const PCI_CLASS_PROG = 0x09; /* programming interface, RO */
export const PCI_CLASS_DEVICE = 0x0a; /* sub-class (0x0a) and base class (0x0b), RO */
/** The 24-bit class code occupies 0x09..0x0b; read it as the top three bytes of 0x08. */
export const PCI_CLASS_REVISION = 0x08;
export const PCI_CACHE_LINE_SIZE = 0x0c; /* RW, no effect in PCIe */
export const PCI_LATENCY_TIMER = 0x0d; /* hardwired 0 in PCIe */
export const PCI_HEADER_TYPE = 0x0e; /* RO */
export const PCI_HEADER_TYPE_NORMAL = 0x00;
export const PCI_HEADER_TYPE_MFD = 0x80; /* multi-function device */
export const PCI_BIST = 0x0f;

export const PCI_BASE_ADDRESS_0 = 0x10; /* 32 bits each */
export const PCI_BASE_ADDRESS_1 = 0x14;
export const PCI_BASE_ADDRESS_2 = 0x18;
export const PCI_BASE_ADDRESS_3 = 0x1c;
export const PCI_BASE_ADDRESS_4 = 0x20;
export const PCI_BASE_ADDRESS_5 = 0x24;
export const PCI_NUM_BARS = 6;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01; /* bit 0: 1 = I/O BAR, 0 = memory BAR */
export const PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00; /* anywhere in the 32-bit space */
export const PCI_BASE_ADDRESS_MEM_TYPE_1M = 0x02; /* below 1 MiB: reserved since PCI 3.0 */
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04; /* 64-bit: this BAR and the next one */
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
export const PCI_BASE_ADDRESS_MEM_FLAGS = 0x0f; /* the RO low bits of a memory BAR */
export const PCI_BASE_ADDRESS_IO_FLAGS = 0x03; /* the RO low bits of an I/O BAR (bit 1 reserved) */

export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c; /* RO */
export const PCI_SUBSYSTEM_ID = 0x2e; /* RO */
export const PCI_ROM_ADDRESS = 0x30; /* expansion ROM BAR: not implemented here, reads 0 */
export const PCI_CAPABILITY_LIST = 0x34; /* first capability's offset, RO; bits 1:0 reserved */
export const PCI_INTERRUPT_LINE = 0x3c; /* RW scratch for software: the IRQ routing */
export const PCI_INTERRUPT_PIN = 0x3d; /* RO: 0 none, 1..4 INTA#..INTD# */
export const PCI_INTERRUPT_PIN_INTA = 1;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

// ---- capability list (PCI 3.0, 6.7) --------------------------------------------------------

export const PCI_CAP_LIST_ID = 0x00; /* 8 bits */
export const PCI_CAP_LIST_NEXT = 0x01; /* 8 bits, 0 ends the list */
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10; /* PCI Express */
export const PCI_CAP_ID_MSIX = 0x11;
/** A list longer than this is a loop: config space holds at most (256 - 64) / 4 capabilities. */
export const PCI_FIND_CAP_TTL = 48;

// ---- MSI capability (PCI 3.0, 6.8.1) -------------------------------------------------------

export const PCI_MSI_FLAGS = 0x02; /* Message Control, 16 bits */
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
export const PCI_MSI_FLAGS_QMASK = 0x000e; /* Multiple Message Capable: log2(vectors), RO */
export const PCI_MSI_FLAGS_QMASK_SHIFT = 1;
export const PCI_MSI_FLAGS_QSIZE = 0x0070; /* Multiple Message Enable: log2(vectors), RW */
export const PCI_MSI_FLAGS_QSIZE_SHIFT = 4;
export const PCI_MSI_FLAGS_64BIT = 0x0080; /* 64-bit address capable, RO */
export const PCI_MSI_FLAGS_MASKBIT = 0x0100; /* per-vector masking capable, RO */
export const PCI_MSI_ADDRESS_LO = 0x04; /* bits 1:0 reserved */
export const PCI_MSI_ADDRESS_HI = 0x08; /* 64-bit capability only */
export const PCI_MSI_DATA_32 = 0x08; /* 16 bits */
export const PCI_MSI_DATA_64 = 0x0c;
export const PCI_MSI_MASK_32 = 0x0c; /* per-vector mask bits, RW */
export const PCI_MSI_MASK_64 = 0x10;
export const PCI_MSI_PENDING_32 = 0x10; /* per-vector pending bits, RO */
export const PCI_MSI_PENDING_64 = 0x14;
export const PCI_MSI_VECTORS_MAX = 32;

// ---- MSI-X capability (PCI 3.0, 6.8.2) -----------------------------------------------------

export const PCI_MSIX_FLAGS = 0x02; /* Message Control, 16 bits */
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff; /* table size - 1, RO */
export const PCI_MSIX_FLAGS_MASKALL = 0x4000; /* function mask */
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_TABLE = 0x04; /* table offset and BAR indicator, RO */
export const PCI_MSIX_PBA = 0x08; /* pending bit array offset and BAR indicator, RO */
export const PCI_MSIX_BIR_MASK = 0x7; /* BAR indicator register: which BAR holds it */
export const PCI_CAP_MSIX_SIZEOF = 0x0c;
export const PCI_MSIX_VECTORS_MAX = 2048;
/** One 16-byte MSI-X table entry, in BAR memory. */
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0x0; /* bits 1:0 reserved */
export const PCI_MSIX_ENTRY_UPPER_ADDR = 0x4;
export const PCI_MSIX_ENTRY_DATA = 0x8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 0xc;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1; /* set at reset; bits 31:1 reserved */

// ---- PCI Express capability (PCIe Base, 7.5.3) ---------------------------------------------

export const PCI_EXP_FLAGS = 0x02; /* PCI Express Capabilities register, 16 bits, RO */
export const PCI_EXP_FLAGS_VERS = 0x000f;
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
export const PCI_EXP_FLAGS_TYPE_SHIFT = 4;
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
export const PCI_EXP_DEVCAP = 0x04; /* Device Capabilities, 32 bits, RO */
export const PCI_EXP_DEVCAP_PAYLOAD = 0x00000007; /* max payload size supported */
export const PCI_EXP_DEVCAP_FLR = 0x10000000; /* function level reset capable */
export const PCI_EXP_DEVCTL = 0x08; /* Device Control, 16 bits */
export const PCI_EXP_DEVCTL_CERE = 0x0001; /* correctable error reporting enable */
export const PCI_EXP_DEVCTL_NFERE = 0x0002; /* non-fatal error reporting enable */
export const PCI_EXP_DEVCTL_FERE = 0x0004; /* fatal error reporting enable */
export const PCI_EXP_DEVCTL_URRE = 0x0008; /* unsupported request reporting enable */
export const PCI_EXP_DEVCTL_RELAX_EN = 0x0010;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_EXT_TAG = 0x0100;
export const PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000; /* initiate function level reset; reads 0 */
export const PCI_EXP_DEVSTA = 0x0a; /* Device Status, 16 bits */
export const PCI_EXP_DEVSTA_CED = 0x0001; /* RW1C */
export const PCI_EXP_DEVSTA_NFED = 0x0002; /* RW1C */
export const PCI_EXP_DEVSTA_FED = 0x0004; /* RW1C */
export const PCI_EXP_DEVSTA_URD = 0x0008; /* RW1C */
export const PCI_EXP_DEVSTA_TRPND = 0x0020; /* transactions pending, RO */
export const PCI_EXP_LNKCAP = 0x0c; /* Link Capabilities, 32 bits, RO */
export const PCI_EXP_LNKCAP_SLS = 0x0000000f; /* max link speed */
export const PCI_EXP_LNKCAP_MLW = 0x000003f0; /* max link width */
export const PCI_EXP_LNKCTL = 0x10; /* Link Control, 16 bits */
export const PCI_EXP_LNKCTL_ASPMC = 0x0003;
export const PCI_EXP_LNKCTL_RCB = 0x0008;
export const PCI_EXP_LNKCTL_CCC = 0x0040;
export const PCI_EXP_LNKCTL_ES = 0x0080;
export const PCI_EXP_LNKSTA = 0x12; /* Link Status, 16 bits, RO */
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_DEVCTL2_COMP_TIMEOUT = 0x000f;
export const PCI_EXP_DEVCTL2_COMP_TMOUT_DIS = 0x0010;
export const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 = 0x3c;
export const PCI_EXP_LINK_SPEED_5_0GT = 2;

// ---- extended capabilities (PCIe Base, 7.6) ------------------------------------------------

/** Extended capabilities start here, in the 4 KiB space only. */
export const PCI_CFG_SPACE_EXT_START = 0x100;
/** Header: ID [15:0], version [19:16], next capability offset [31:20]. */
export const PCI_EXT_CAP_ID_MASK = 0x0000ffff;
export const PCI_EXT_CAP_VER_SHIFT = 16;
export const PCI_EXT_CAP_NEXT_SHIFT = 20;
export const PCI_EXT_CAP_ID_ARI = 0x000e;
export const PCI_EXT_CAP_ID_SRIOV = 0x0010;
/** A list longer than this is a loop: (4096 - 256) / 8. */
export const PCI_FIND_EXT_CAP_TTL = 480;

// ---- SR-IOV extended capability (PCIe Base, 9.3.3) -----------------------------------------

export const PCI_SRIOV_CAP = 0x04; /* SR-IOV Capabilities, 32 bits, RO */
export const PCI_SRIOV_CAP_VFM = 0x00000001; /* VF migration capable */
export const PCI_SRIOV_CTRL = 0x08; /* SR-IOV Control, 16 bits */
export const PCI_SRIOV_CTRL_VFE = 0x0001; /* VF Enable */
export const PCI_SRIOV_CTRL_VFM = 0x0002; /* VF Migration Enable */
export const PCI_SRIOV_CTRL_INTR = 0x0004; /* VF Migration Interrupt Enable */
export const PCI_SRIOV_CTRL_MSE = 0x0008; /* VF Memory Space Enable */
export const PCI_SRIOV_CTRL_ARI = 0x0010; /* ARI Capable Hierarchy */
export const PCI_SRIOV_STATUS = 0x0a; /* SR-IOV Status, 16 bits */
export const PCI_SRIOV_STATUS_VFM = 0x0001; /* VF Migration Status, RW1C */
export const PCI_SRIOV_INITIAL_VF = 0x0c; /* InitialVFs, 16 bits, RO */
export const PCI_SRIOV_TOTAL_VF = 0x0e; /* TotalVFs, 16 bits, RO */
export const PCI_SRIOV_NUM_VF = 0x10; /* NumVFs, 16 bits, RW while VF Enable is clear */
export const PCI_SRIOV_FUNC_LINK = 0x12; /* Function Dependency Link, 8 bits, RO */
export const PCI_SRIOV_VF_OFFSET = 0x14; /* First VF Offset, 16 bits, RO */
export const PCI_SRIOV_VF_STRIDE = 0x16; /* VF Stride, 16 bits, RO */
export const PCI_SRIOV_VF_DID = 0x1a; /* VF Device ID, 16 bits, RO */
export const PCI_SRIOV_SUP_PGSIZE = 0x1c; /* Supported Page Sizes, 32 bits, RO */
export const PCI_SRIOV_SYS_PGSIZE = 0x20; /* System Page Size, 32 bits, RW while VF Enable is clear */
export const PCI_SRIOV_BAR = 0x24; /* VF BAR0..5, 32 bits each, BAR encoding (memory only) */
export const PCI_SRIOV_VFM = 0x3c; /* VF Migration State Array Offset, RO */
export const PCI_EXT_CAP_SRIOV_SIZEOF = 0x40;
export const PCI_SRIOV_NUM_BARS = 6;
/** The page sizes every PF must support: 4K, 8K, 64K, 256K, 1M, 4M (bit n = 2^(n+12) bytes). */
export const PCI_SRIOV_SUP_PGSIZE_MINREQ = 0x553;
export const PCI_SRIOV_PAGE_SHIFT = 12;

// ---- configuration mechanism #1 (PCI 3.0, 3.2.2.3.2) ---------------------------------------

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8; /* 32-bit accesses only */
export const PCI_CONFIG_DATA_PORT = 0xcfc; /* 0xcfc..0xcff, accesses of 1, 2 or 4 bytes */
export const PCI_CONFIG_DATA_PORTS = 4;
export const PCI_CONFIG_ADDRESS_ENABLE = 0x80000000; /* bit 31: this is a configuration cycle */
export const PCI_CONFIG_ADDRESS_BUS_SHIFT = 16; /* bits 23:16 */
export const PCI_CONFIG_ADDRESS_DEVICE_SHIFT = 11; /* bits 15:11 */
export const PCI_CONFIG_ADDRESS_FUNCTION_SHIFT = 8; /* bits 10:8 */
export const PCI_CONFIG_ADDRESS_REGISTER_MASK = 0xfc; /* bits 7:2, a dword index */
/** Bits 30:24 and 1:0 are reserved and read as 0 (Intel chipsets; AMD reuse 27:24). */
export const PCI_CONFIG_ADDRESS_WRITABLE = 0x80fffffc;

// ---- identities ----------------------------------------------------------------------------

export const PCI_VENDOR_ID_INTEL = 0x8086;
/** Base class 0x02 (network controller), sub-class 0x00 (Ethernet), interface 0x00. */
export const PCI_CLASS_NETWORK_ETHERNET = 0x020000;
