/**
 * The Intel VT-d IOMMU model: a pure, self-contained remapping unit whose tables live in host
 * memory, read through the PhysicalMemory port. See vtd.ts for the device, vtd-state.ts for
 * the state and the fold, vtd-tables.ts for the builders the hypervisor programs it with.
 */
export * from './vtd-internal.ts';
export * from './vtd-state.ts';
export * from './vtd-tables.ts';
export * from './vtd.ts';
export * from './vtd-invalidation.ts';
export * from './vtd-registers.ts';
export * from './vtd-checker.ts';
export * from './vtd-harness.ts';
