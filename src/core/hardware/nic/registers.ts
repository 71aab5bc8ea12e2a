/**
 * The SR-IOV NIC's virtual function as a driver sees it: the 82599 VF register offsets
 * (Intel 82599 datasheet, 8.3; Linux ixgbevf's IXGBE_VF* names) and its legacy descriptors.
 * The model keeps one tx and one rx queue per VF (queue 0).
 *
 * In guest-physical space every VF sits at the same window (Xen maps the BARs of an assigned
 * device at a fixed place for these guests): BAR0 registers at NIC_GUEST_BAR0, BAR3 (the
 * MSI-X table) at NIC_GUEST_BAR3. Accesses there exit (EPT misconfiguration) and are emulated.
 */

/** Guest-physical windows of an assigned VF's BARs (16 KiB each). */
export const NIC_GUEST_BAR0 = 0xf000_0000;
export const NIC_GUEST_BAR3 = 0xf000_4000;
export const NIC_VF_BAR_BYTES = 16 * 1024;

/** The routing id of the PF on the host bus, and the guest's view of its VF (00:04.0). */
export const NIC_GUEST_BDF = 4 << 3;

/** BAR0 registers (32-bit). */
export const VFCTRL = 0x0000; /* write 1 << 26 (RST) to reset the VF's queues */
export const VFSTATUS = 0x0008; /* RO: bit 1 link up */
export const VFEICR = 0x0100; /* interrupt cause, read to clear: bit 0 rx, bit 1 tx */
export const VFEICS = 0x0104; /* write 1s to set causes */
export const VFEIMS = 0x0108; /* interrupt mask set (write 1s); reads the mask */
export const VFEIMC = 0x010c; /* interrupt mask clear (write 1s) */
export const VFRDBAL = 0x1000; /* rx ring base, low 32 bits (guest-physical: an IOVA) */
export const VFRDBAH = 0x1004;
export const VFRDLEN = 0x1008; /* rx ring length in bytes, a multiple of 128 */
export const VFRDH = 0x1010; /* rx head: the device's (RO for the driver) */
export const VFRDT = 0x1018; /* rx tail: the driver gives descriptors up to here */
export const VFRXDCTL = 0x1028; /* bit 25 ENABLE */
export const VFTDBAL = 0x2000;
export const VFTDBAH = 0x2004;
export const VFTDLEN = 0x2008;
export const VFTDH = 0x2010;
export const VFTDT = 0x2018; /* tx tail: the doorbell */
export const VFTXDCTL = 0x2028; /* bit 25 ENABLE */
/** Model register: the MAC the PF forced (ixgbevf learns it from the mailbox reply to VF_RESET). */
export const VFMACL = 0x0400; /* bytes 0..3 of the MAC, little-endian */
export const VFMACH = 0x0404; /* bytes 4..5 */

export const VFCTRL_RST = 1 << 26;
export const VFSTATUS_LU = 1 << 1;
export const DCTL_ENABLE = 1 << 25;
export const EICR_RX = 1 << 0;
export const EICR_TX = 1 << 1;

/** Every BAR0 register by name (the model's register file and the logs use these names). */
export const VF_REGISTERS: Record<string, number> = {
  VFCTRL, VFSTATUS, VFEICR, VFEICS, VFEIMS, VFEIMC, VFRDBAL, VFRDBAH, VFRDLEN, VFRDH, VFRDT, VFRXDCTL,
  VFTDBAL, VFTDBAH, VFTDLEN, VFTDH, VFTDT, VFTXDCTL, VFMACL, VFMACH,
};

/**
 * Legacy descriptors, 16 bytes each.
 * tx: [0..7] buffer address, [8..9] length, [10] CSO, [11] CMD (EOP 0x01, IFCS 0x02, RS 0x08),
 *     [12] STA (DD 0x01, written back by the device), [13] CSS, [14..15] VLAN.
 * rx: [0..7] buffer address, [8..9] length (written back), [10..11] checksum,
 *     [12] status (DD 0x01, EOP 0x02), [13] errors, [14..15] VLAN.
 */
export const DESC_BYTES = 16;
export const TXD_CMD_EOP = 0x01;
export const TXD_CMD_RS = 0x08;
export const TXD_STA_DD = 0x01;
export const RXD_STA_DD = 0x01;
export const RXD_STA_EOP = 0x02;
/** The rx buffer size the device assumes (SRRCTL's default, 2 KiB). */
export const RX_BUFFER_BYTES = 2048;
/** Largest frame the model carries (1514 bytes plus an 802.1Q tag). */
export const FRAME_MAX_BYTES = 1518;
