/**
 * The I/O panes: the IOMMU (VT-d context entries, IOTLB, fault records), the interrupt
 * remapping table and the NIC/SIOM queues, each as the machine has them. The machine has no
 * I/O model yet, so each says so; the views read the state defensively, by field name, so
 * that the I/O issue fills them in by adding those fields to MachineState.
 */
import type { MachineState } from '../core/state.ts';
import { line, type Line } from './lines.ts';

export interface DeviceSection {
  /** The state fields that may hold this model (the first present one is shown). */
  fields: readonly string[];
  title: string;
  /** What the pane will list once the model exists. */
  contents: string;
}

export const IOMMU: DeviceSection = { fields: ['iommu', 'vtd'], title: 'IOMMU (VT-d)', contents: 'context entries, IOTLB, fault records' };
export const INTERRUPT_REMAPPING: DeviceSection = { fields: ['interruptRemapping', 'irt'], title: 'Interrupt remapping', contents: 'remapping table (IRTEs)' };
export const NIC: DeviceSection = { fields: ['nic', 'siom'], title: 'NIC / SIOM', contents: 'rx/tx queues, SIOM state' };

function sizeOf(value: unknown): string {
  if (value instanceof Map || value instanceof Set) return `${value.size} entries`;
  if (Array.isArray(value)) return `${value.length} entries`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return typeof value === 'object' && value !== null ? `${Object.keys(value).length} fields` : String(value);
}

/** One line per table of the model, or a line saying the machine has none. */
export function deviceLines(state: MachineState, section: DeviceSection): Line[] {
  const record = state as unknown as Record<string, unknown>;
  const model = section.fields.map((f) => record[f]).find((value) => value !== undefined && value !== null);
  if (model === undefined || model === null) {
    return [line(`${section.title}: none in this machine yet (no ${section.contents})`)];
  }
  const tables = typeof model === 'object' ? Object.entries(model as Record<string, unknown>) : [];
  return [line(`${section.title}:`), ...tables.map(([name, value]) => line(`  ${name}: ${sizeOf(value)}`))];
}
