/**
 * evolve(state, event): applies one fact to the state. It never decides anything and never
 * computes what an event already carries, so folding a recording never re-executes.
 *
 * Each kind is applied next to the code that decides it (the scheduler's events in the
 * scheduler, a DMA request in the VT-d driver's dma.ts, ...); this table only routes, and
 * holds the machine's own kinds. Written as mutation: the live machine applies it to its
 * working state, the timeline to an immer draft. One function, two uses. `live` says the
 * state is owned by its caller alone (a live machine's working state, or a reader's private
 * fold from a checkpoint), so the pages it made private may be written in place.
 */
import type { Event, EventKind, EventOf } from '../../events/schema.ts';
import { applyNicReg } from '../hardware/nic/device.ts';
import { applyCreate, applyDestroy } from '../hypervisor/domains.ts';
import { applyNetFrame } from '../hypervisor/io/io-state.ts';
import { applyNetbackState } from '../hypervisor/io/netback.ts';
import { applyNicVf } from '../hypervisor/io/nic-pf-driver.ts';
import { applySiomBuffer } from '../hypervisor/io/siom.ts';
import { applyIo, applyPciCfg, applyPciMmio } from '../hypervisor/io/vpci.ts';
import { applyWrite } from '../hypervisor/memory/guest-memory.ts';
import { applyEptUpdate, applyP2m } from '../hypervisor/memory/memory-ops.ts';
import { applyKeyAssign, applyKeyRevoke, applyPpt, applyScrub } from '../hypervisor/memory/smm.ts';
import { applyHypercall, applyIdle, applySwitch } from '../hypervisor/scheduler.ts';
import { applyShadowSwitch, applyShadowSync, applyTlbFill, applyTlbFlush } from '../hypervisor/vmx/translation-caches.ts';
import {
  applyCpuStep, applyEntry, applyException, applyExit, applyLapicTimer, applyVcpuHalt, applyVmcsWrite,
} from '../hypervisor/vmx/vcpu-run.ts';
import { applyDmaRequest } from '../hypervisor/vtd-driver/dma.ts';
import { applyMsi } from '../hypervisor/vtd-driver/interrupt-remapping.ts';
import { applyVtdOp } from '../hypervisor/vtd-driver/vtd-op.ts';
import { applyDom0Op } from './guests/dom0.ts';
import { applyCanary, applyGuestOp } from './guests/scripted.ts';
import { applyInput } from './inputs.ts';
import type { MachineState } from './state.ts';

type Apply<K extends EventKind> = (state: MachineState, event: EventOf<K>, live: boolean) => void;

/** Observations: the event records what happened and changes nothing. */
const observation = (): void => {};

/** Every kind's fold (the mapped type makes a kind without one a compile error). */
const APPLY: { [K in EventKind]: Apply<K> } = {
  'machine.boot': (state) => void (state.booted = true),
  'machine.halt': (state) => void (state.halted = true),
  'violation': (state) => void (state.violations += 1),
  'input': applyInput,
  'wire.rx': (state, e) => void (state.io.wireNext = e.index + 1),
  'guest.op': applyGuestOp,
  'guest.canary': applyCanary,
  'dom0.op': applyDom0Op,
  'sched.switch': applySwitch,
  'sched.idle': applyIdle,
  'hypercall': applyHypercall,
  'cpu.step': applyCpuStep,
  'exception': applyException,
  'vm.exit': applyExit,
  'vm.entry': applyEntry,
  'vmcs.write': applyVmcsWrite,
  'vcpu.halt': applyVcpuHalt,
  'lapic.timer': applyLapicTimer,
  'tlb.fill': applyTlbFill,
  'tlb.flush': applyTlbFlush,
  'shadow.sync': applyShadowSync,
  'shadow.switch': applyShadowSwitch,
  'mem.write': applyWrite,
  'mem.read': observation,
  'mem.encrypt': observation,
  'mem.decrypt': observation,
  'mem.fault': observation,
  'dom0.foreign_read': observation,
  'p2m.update': applyP2m,
  'ept.update': applyEptUpdate,
  'smm.ppt.update': applyPpt,
  'smm.scrub': applyScrub,
  'smm.key.assign': applyKeyAssign,
  'smm.key.revoke': applyKeyRevoke,
  'domain.create': applyCreate,
  'domain.destroy': applyDestroy,
  'io': applyIo,
  'pci.cfg': applyPciCfg,
  'pci.mmio': applyPciMmio,
  'vtd.op': applyVtdOp,
  'dma.request': applyDmaRequest,
  'msi': applyMsi,
  'nic.vf': applyNicVf,
  'nic.reg': (state, e) => applyNicReg(state.io, e),
  'net.frame': (state, e) => applyNetFrame(state.io, e),
  'siom.buffer': applySiomBuffer,
  'netback.copy': observation,
  'netback.state': applyNetbackState,
};

export function evolve(state: MachineState, event: Event, live = false): void {
  // The hottest kinds called directly: a retired instruction and its stores.
  if (event.kind === 'cpu.step') return applyCpuStep(state, event);
  if (event.kind === 'mem.write') return applyWrite(state, event, live);
  (APPLY[event.kind] as Apply<EventKind>)(state, event as never, live);
}
