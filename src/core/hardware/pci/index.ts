/**
 * The PCI model: configuration space (config-space.ts, register names in pci-regs.ts), the
 * bus with configuration mechanism #1 and BAR decoding (bus.ts), and message
 * signalled interrupts (msi.ts). The SR-IOV NIC's PF identity is the NIC's (../nic/pf-config.ts).
 */
export * from './pci-regs.ts';
export * from './config-space.ts';
export * from './config-image.ts';
export * from './config-access.ts';
export * from './msi.ts';
export * from './bus.ts';
