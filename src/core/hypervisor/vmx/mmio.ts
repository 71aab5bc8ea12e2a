/**
 * MMIO emulation: the guest touched its VF's BAR window, which Xen keeps out of the EPT (a
 * misconfigured entry) or out of the shadow table, so the access trapped. The hypervisor
 * runs the instruction once more in its emulator, with the window's loads and stores sent
 * to the device and every other access to memory as usual - any instruction the
 * interpreter knows, as KVM's emulator does for the instructions it knows.
 */
import type { AccessSize, CpuBus, Fault } from '../../hardware/cpu/bus.ts';
import { cloneCpu } from '../../hardware/cpu/cpu-state.ts';
import { stepInto } from '../../hardware/cpu/interpreter.ts';
import { NIC_GUEST_BAR0, NIC_GUEST_BAR3, NIC_VF_BAR_BYTES } from '../../hardware/nic/registers.ts';
import { CR0_PG, guestWalk, type WalkPort } from '../../hardware/paging/guest-walk.ts';
import { xenHvmControls } from '../../hardware/vmx/controls.ts';
import { nicMmioRead, nicMmioWrite } from '../io/vf-mmio.ts';
import { gp, resume, type ExitAction, type ExitContext } from './exit-action.ts';
import { GuestBus } from './guest-bus.ts';

/** The BAR a guest-physical address falls in (0 registers, 3 MSI-X table), if in the window. */
function barAt(gpa: number): { bar: number; offset: number } | undefined {
  if (gpa >= NIC_GUEST_BAR0 && gpa < NIC_GUEST_BAR0 + NIC_VF_BAR_BYTES) return { bar: 0, offset: gpa - NIC_GUEST_BAR0 };
  if (gpa >= NIC_GUEST_BAR3 && gpa < NIC_GUEST_BAR3 + NIC_VF_BAR_BYTES) return { bar: 3, offset: gpa - NIC_GUEST_BAR3 };
  return undefined;
}

/** True when `gpa` is in the BAR window of a VF assigned to the exiting domain. */
export function inMmioWindow(ctx: ExitContext, gpa: number): boolean {
  return gpa >= 0 && barAt(gpa) !== undefined && ctx.host.state.io.vfs.some((v) => v.dom === ctx.domain.id);
}

/** The emulator's memory: guest paging walked by the hypervisor; the window goes to the device. */
class MmioBus implements CpuBus {
  constructor(private readonly ctx: ExitContext, private readonly walk: WalkPort, readonly inner: GuestBus) {}

  private window(linear: number, write: boolean): { bar: number; offset: number } | undefined | Fault {
    const cpu = this.ctx.x86.cpu;
    let gpa = linear >>> 0;
    if ((cpu.cr0 & CR0_PG) !== 0) {
      const walked = guestWalk(this.walk, cpu, linear, write);
      if ('kind' in walked) return walked as Fault;
      gpa = walked.gpa;
    }
    return barAt(gpa);
  }

  fetch(linear: number, count: number): Uint8Array | Fault {
    return this.inner.fetch(linear, count);
  }

  read(linear: number, bytes: AccessSize): number | Fault {
    const at = this.window(linear, false);
    if (at === undefined) return this.inner.read(linear, bytes);
    if ('kind' in at) return at;
    return nicMmioRead(this.ctx.host, this.ctx.domain.id, at.bar, at.offset, bytes);
  }

  write(linear: number, bytes: AccessSize, value: number): Fault | undefined {
    const at = this.window(linear, true);
    if (at === undefined) return this.inner.write(linear, bytes, value);
    if ('kind' in at) return at;
    nicMmioWrite(this.ctx.host, this.ctx.domain.id, at.bar, at.offset, bytes, value);
    return undefined;
  }
}

/** Emulates the trapped instruction; the guest gets #GP if it cannot be emulated. */
export function emulateMmio(ctx: ExitContext, walk: WalkPort): ExitAction {
  const { host, domain, vcpu, pcpu, x86 } = ctx;
  const bus = new MmioBus(ctx, walk, new GuestBus(host, domain, vcpu, pcpu));
  const cpu = cloneCpu(x86.cpu);
  const outcome = stepInto(x86.cpu, cpu, bus, xenHvmControls(domain.paging), host.state.tick);
  if (outcome.kind === 'retired') {
    bus.inner.commit(true);
    cpu.interruptibility = 0;
    return resume(cpu);
  }
  bus.inner.discardStores();
  bus.inner.commit(false);
  if (outcome.kind === 'exception') return resume(cloneCpu(x86.cpu), { vector: outcome.vector, errorCode: outcome.errorCode ?? -1, cr2: outcome.cr2 ?? 0 });
  return resume(cloneCpu(x86.cpu), gp());
}
