/**
 * Inputs: modifications from outside the machine (a scenario's timed inputs, a fork's --set).
 * Each is an `input` event, folded here (what it changes in the state), followed by what it
 * makes the machine do (a dom0 action, a device's DMA, a frame from the wire, a new image).
 */
import { assert } from '../../events/errors.ts';
import type { EventOf } from '../../events/schema.ts';
import { reloadImage } from '../hypervisor/domains.ts';
import { NIC_PF_BDF } from '../hypervisor/io/io-state.ts';
import { newX86Vcpu } from '../hypervisor/vmx/vcpu.ts';
import { dmaRead, dmaWrite } from '../hypervisor/vtd-driver/dma.ts';
import { interruptRequest } from '../hypervisor/vtd-driver/interrupt-remapping.ts';
import { performDom0Action } from './guests/dom0.ts';
import { compileOpsValue, parseDeviceDma, parseDeviceMsi, parseDom0Input } from './scenario.ts';
import type { MachineHost, MachineState } from './state.ts';
import { wireDeliver } from './wire.ts';

/** input: something from outside reaches the machine; a halted machine decides again. */
export function applyInput(state: MachineState, e: EventOf<'input'>): void {
  state.halted = false;
  if (e.index >= 0) state.inputNext = e.index + 1;
  modify(state, e.key, e.value);
}

/** A modification from outside the machine (a fork's --set, a scenario input). */
function modify(state: MachineState, key: string, value: string): void {
  const parts = key.split('.');
  if (key === 'profile') {
    state.profile = value as MachineState['profile'];
  } else if (key === 'quantum') {
    state.quantum = Number(value);
  } else if (parts[0] === 'flaw') {
    state.flaws = state.flaws.filter((f) => f !== parts[1]);
    if (value === 'on') state.flaws.push(parts[1]);
  } else if (parts[0] === 'dom0' || parts[0] === 'device' || parts[0] === 'wire') {
    // The action itself follows the input as its own events.
  } else if (parts[0] === 'domain' && parts[2] === 'x86') {
    // A new image: the vCPU starts over at its entry, with nothing cached (the image follows as mem.write).
    const domain = [...state.domains.values()].find((d) => d.name === parts[1] && d.status === 'running');
    const spec = state.config.domains.find((d) => d.name === parts[1]);
    if (domain === undefined || domain.kind !== 'x86' || spec === undefined) return;
    domain.vcpus[0] = { pc: 0, loops: [], x86: newX86Vcpu(spec, domain.id, 0) };
  } else if (parts[0] === 'domain' && parts[2] === 'ops') {
    // A domain that is not running (not created yet, or dead) has no program to replace.
    const domain = [...state.domains.values()].find((d) => d.name === parts[1] && d.status === 'running');
    if (domain === undefined) return;
    domain.programs = [compileOpsValue(value), ...domain.programs.slice(1)];
    domain.vcpus[0] = { pc: 0, loops: [], x86: null };
  } else {
    assert(false, () => `input with unknown key ${key} reached evolve`);
  }
}

/**
 * What an input does beyond the state change its event carries: a dom0 action, a hostile
 * device's DMA or interrupt request, a frame from the wire, a new x86 image (the input's own
 * fold resets the vCPU; the image is written here).
 */
export function actOnInput(host: MachineHost, key: string, value: string): void {
  const [family, name] = key.split('.');
  const bytes = (): Uint8Array => Uint8Array.from(Buffer.from(value, 'hex'));
  if (family === 'dom0') {
    performDom0Action(host, parseDom0Input(name, value, host.state.config.domains.map((d) => d.name)), -1);
  } else if (key === 'device.dma') {
    deviceDma(host, parseDeviceDma(value)!);
  } else if (key === 'device.msi') {
    const msi = parseDeviceMsi(value)!;
    interruptRequest(host, msi.sid, msi.address, msi.data);
  } else if (key === 'wire.frame') {
    wireDeliver(host, bytes());
  } else if (family === 'domain' && key.endsWith('.x86')) {
    reloadImage(host, name, bytes());
  }
}

/** A device doing DMA on its own (a hostile or broken VF): only an enabled VF has a source id. */
function deviceDma(host: MachineHost, dma: NonNullable<ReturnType<typeof parseDeviceDma>>): void {
  const fn = host.state.io.pci.functions.get(NIC_PF_BDF)?.sriov?.vfs[dma.vf - 1];
  if (fn === undefined) return;
  if (dma.write) dmaWrite(host, fn.bdf, dma.iova, dma.data);
  else dmaRead(host, fn.bdf, dma.iova, dma.len);
}

