/**
 * The PCI model: configuration space (config-space.ts, register names in pci-regs.ts), the
 * bus with configuration mechanism #1 and BAR decoding (bus.ts), message signalled
 * interrupts (msi.ts) and the SR-IOV NIC's PF identity (sriov-nic.ts).
 */
export * from './pci-regs.ts';
export * from './config-space.ts';
export * from './msi.ts';
export * from './bus.ts';
export * from '../nic/pf-config.ts';
