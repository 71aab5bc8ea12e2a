/**
 * The external wire: frames the scenario (or an input) brings arrive at the NIC's uplink.
 * Each scenario frame is a step of its own (wire.rx), then the device takes it in.
 */
import { assert } from '../../events/errors.ts';
import { nicWireDeliver } from '../hardware/nic/device.ts';
import { nicPort } from '../hypervisor/io/io-path.ts';
import type { Host } from '../hypervisor/state.ts';

/**
 * A frame arrives from the external wire (scenario network.wire[index]; a step of its own):
 * it enters the switch on the uplink, then the profile's receive path. With dom0's backend
 * down (vanilla), the bridge is gone and the frame is dropped there.
 */
export function wireReceive(host: Host, index: number): void {
  const wire = host.state.config.network.wire[index];
  assert(wire !== undefined, () => `no wire frame ${index}`);
  host.emit('wire.rx', { index, frame: wire.frame.slice() });
  wireDeliver(host, wire.frame);
}

/** A frame from the wire on its way in (a scenario's wire frame, or an input's `wire.frame`). */
export function wireDeliver(host: Host, frame: Uint8Array): void {
  nicWireDeliver(nicPort(host), frame);
}
