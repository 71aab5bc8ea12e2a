/**
 * dom0, the management domain, at work: the scenario's dom0 actions (and those an input asks
 * for) - creating and destroying domains, mapping a guest's frame to read it, assigning and
 * deassigning VFs, and its network backend crashing.
 */
import type { EventOf } from '../../../events/schema.ts';
import type { Dom0Action } from '../../hypervisor/config.ts';
import { attachNic, createCheck, createDomain, destroyDomain, detachNic } from '../../hypervisor/domains.ts';
import { foreignRead } from '../../hypervisor/memory/guest-memory.ts';
import { EEXIST, EINVAL, ENOSPC } from '../../hypervisor/memory/memory-ops.ts';
import type { MachineHost, MachineState } from '../state.ts';

/** A dom0 action from the scenario: the management domain at work. */
export function runDom0Action(host: MachineHost, index: number): void {
  performDom0Action(host, host.state.config.dom0Actions[index], index);
}

/** Performs a dom0 action; `index` is its place in the scenario, or -1 for one from an input. */
export function performDom0Action(host: MachineHost, action: Dom0Action, index: number): void {
  const target = [...host.state.domains.values()].find((d) => d.name === action.domain && d.status === 'running');
  switch (action.op) {
    case 'create_domain': {
      const spec = host.state.config.domains.find((d) => d.name === action.domain)!;
      const result = target !== undefined ? EINVAL : createCheck(host.state, spec.memoryKiB);
      host.emit('dom0.op', { index, op: action.op, target: result === 0 ? host.state.nextDomainId : -1, result });
      if (result === 0) createDomain(host, spec.name, spec.memoryKiB, spec.vcpus);
      return;
    }
    case 'destroy_domain':
      host.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: target ? 0 : EINVAL });
      if (target) destroyDomain(host, target.id, 'destroyed by dom0');
      return;
    case 'foreign_read':
      host.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: target ? 0 : EINVAL });
      if (target) foreignRead(host, target.id, action.gfn, action.offset, action.len);
      return;
    case 'assign_vf': {
      // The PF driver needs the domain's port settings (MAC, VLAN) from the scenario.
      const spec = host.state.config.domains.find((d) => d.name === action.domain);
      const has = target !== undefined && host.state.io.vfs.some((v) => v.dom === target.id);
      const free = host.state.io.vfs.filter((v) => v.dom >= 0).length < host.state.config.network.vfs;
      const result = target === undefined || !spec?.nic ? EINVAL : has ? EEXIST : !free ? ENOSPC : 0;
      host.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result });
      if (result === 0) attachNic(host, target!.id);
      return;
    }
    case 'deassign_vf': {
      const has = target !== undefined && host.state.io.vfs.some((v) => v.dom === target.id);
      host.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: has ? 0 : EINVAL });
      if (has) detachNic(host, target!.id);
      return;
    }
    case 'crash_backend':
      // dom0's fault: in vanilla every guest's I/O stops; SIOM's path does not pass through dom0.
      host.emit('dom0.op', { index, op: action.op, target: -1, result: 0 });
      host.emit('netback.state', { up: false, reason: 'dom0 network backend crashed' });
      return;
  }
}

/** dom0.op: the scenario's next action is done (one from an input leaves the list where it was). */
export function applyDom0Op(state: MachineState, e: EventOf<'dom0.op'>): void {
  if (e.index >= 0) state.dom0Next = e.index + 1;
}
