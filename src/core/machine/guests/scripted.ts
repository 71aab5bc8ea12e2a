/**
 * Scripted guests: a vCPU whose program is a list of high-level operations. One operation
 * is one step and one tick; it reaches memory through the same p2m + SMM path instructions
 * use. The fuzzer generates these programs, so they are a first-class kind of guest.
 */
import { assert } from '../../../events/errors.ts';
import { GUEST_OP_NAMES, type DomainId, type EventOf } from '../../../events/schema.ts';
import { PAGE_SIZE, type GuestOp } from '../../hypervisor/config.ts';
import { destroyDomain } from '../../hypervisor/domains.ts';
import { guestRead, guestWrite } from '../../hypervisor/memory/guest-memory.ts';
import {
  addToPhysmap, addToPhysmapCheck, decreaseCount, decreaseReservation, populateCheck, populatePhysmap,
} from '../../hypervisor/memory/memory-ops.ts';
import { advanceTurn } from '../../hypervisor/pcpu-turns.ts';
import type { VcpuRef } from '../../hypervisor/scheduler.ts';
import { resolveControl } from '../../hypervisor/scripted-vcpu.ts';
import { domainOf } from '../../hypervisor/state.ts';
import { nextBytes, type PrngState } from '../prng.ts';
import type { MachineHost, MachineState } from '../state.ts';
import { nicPostReceive, nicRegisterWrite, nicSetup, nicTransmit } from './scripted-nic-driver.ts';

const YIELD_OP = GUEST_OP_NAMES.indexOf('yield');
const opCode = (name: (typeof GUEST_OP_NAMES)[number]): number => GUEST_OP_NAMES.indexOf(name);

/** Runs the next operation of a runnable vCPU on `pcpu`. */
export function runGuestOperation(host: MachineHost, pcpu: number, ref: VcpuRef): void {
  const domain = host.state.domains.get(ref.dom)!;
  const context = domain.vcpus[ref.vcpu];
  const program = domain.programs[ref.vcpu];
  const resolved = resolveControl(program, context.pc, context.loops);
  assert(resolved !== undefined, () => `vCPU ${ref.dom}.${ref.vcpu} ran with nothing to run`);
  const op = program[resolved.pc];
  assert(op.op !== 'repeat' && op.op !== 'end', 'loop control reached execution');
  host.emit('guest.op', {
    dom: ref.dom, vcpu: ref.vcpu, pcpu, pc: resolved.pc, op: opCode(op.op), next: resolved.pc + 1, loops: resolved.loops,
  });
  execute(host, pcpu, ref, op);
}

function execute(host: MachineHost, pcpu: number, ref: VcpuRef, op: GuestOp): void {
  switch (op.op) {
    case 'write': guestWrite(host, ref.dom, pcpu, op.gpa, op.bytes); return;
    case 'read': guestRead(host, ref.dom, pcpu, op.gpa, op.len); return;
    case 'canary': plantCanary(host, pcpu, ref.dom, op); return;
    case 'scan': scan(host, pcpu, ref.dom); return;
    case 'hypercall': hypercall(host, ref, op); return;
    case 'exit': destroyDomain(host, ref.dom, 'shutdown'); return;
    case 'yield': return;
    case 'nic_setup':
    case 'nic_tx':
    case 'nic_rx':
    case 'mmio':
      return nicOperation(host, { host, dom: ref.dom, vcpu: ref.vcpu, pcpu }, op);
    case 'repeat':
    case 'end':
      assert(false, 'loop control reached execution');
  }
}

/** A NIC operation: only a domain with a VF has a device to drive (else it is a no-op). */
function nicOperation(host: MachineHost, c: Parameters<typeof nicSetup>[0], op: Extract<GuestOp, { op: 'nic_setup' | 'nic_tx' | 'nic_rx' | 'mmio' }>): void {
  if (!host.state.io.vfs.some((v) => v.dom === c.dom)) return;
  if (op.op === 'nic_setup') nicSetup(c);
  else if (op.op === 'nic_tx') nicTransmit(c, op.frame, op.buffer);
  else if (op.op === 'nic_rx') nicPostReceive(c, op.buffer);
  else nicRegisterWrite(c, op.bar, op.offset, op.value);
}

/** A secret the guest keeps in memory; the canary-confined invariant watches for it. */
function plantCanary(host: MachineHost, pcpu: number, dom: DomainId, op: Extract<GuestOp, { op: 'canary' }>): void {
  let secret = op.secret;
  let prng: number[] = [];
  if (secret === null) {
    const draw = [...host.state.prng] as PrngState;
    const hex = Buffer.from(nextBytes(draw, op.len)).toString('hex').slice(0, op.len - 7);
    secret = new TextEncoder().encode(`CANARY-${hex}`);
    prng = draw;
  }
  host.emit('guest.canary', { dom, gpa: op.gpa, secret, prng });
  guestWrite(host, dom, pcpu, op.gpa, secret);
}

/** Reads every page the domain has, in gfn order: what a tenant does to look for leftovers. */
function scan(host: MachineHost, pcpu: number, dom: DomainId): void {
  const gfns = [...host.state.domains.get(dom)!.p2m.keys()].sort((a, b) => a - b);
  for (const gfn of gfns) guestRead(host, dom, pcpu, gfn * PAGE_SIZE, PAGE_SIZE);
}

function hypercall(host: MachineHost, ref: VcpuRef, op: Extract<GuestOp, { op: 'hypercall' }>): void {
  const base = { dom: ref.dom, vcpu: ref.vcpu, op: op.call, args: op.args, text: op.text };
  switch (op.call) {
    case 'populate_physmap': {
      const [gfn, count] = op.args;
      const result = populateCheck(host.state, ref.dom, gfn, count);
      host.emit('hypercall', { ...base, result: result === 0 ? count : result });
      if (result === 0) populatePhysmap(host, ref.dom, gfn, count);
      return;
    }
    case 'decrease_reservation': {
      const done = decreaseCount(host.state, ref.dom, op.args);
      host.emit('hypercall', { ...base, result: done });
      if (done > 0) decreaseReservation(host, ref.dom, op.args.slice(0, done));
      return;
    }
    case 'console_write':
      host.emit('hypercall', { ...base, result: op.text.length });
      return;
    case 'sched_yield':
      host.emit('hypercall', { ...base, result: 0 });
      return;
    case 'add_to_physmap': {
      const [domid, gfn, gpfn] = op.args;
      const result = addToPhysmapCheck(host.state, ref.dom, domid, gfn, gpfn);
      host.emit('hypercall', { ...base, result });
      if (result === 0) addToPhysmap(host, ref.dom, domid, gfn, gpfn);
      return;
    }
  }
}

// ---- the fold of the guest's own events ----

export function applyGuestOp(state: MachineState, e: EventOf<'guest.op'>): void {
  const vcpu = domainOf(state, e.dom).vcpus[e.vcpu];
  vcpu.pc = e.next;
  vcpu.loops = e.loops;
  const pcpu = state.sched.pcpus[e.pcpu];
  pcpu.quantumLeft = e.op === YIELD_OP ? 0 : Math.max(0, pcpu.quantumLeft - 1);
  advanceTurn(state, e.pcpu);
}

export function applyCanary(state: MachineState, e: EventOf<'guest.canary'>): void {
  state.canaries.push({ dom: e.dom, gpa: e.gpa, secret: e.secret });
  if (e.prng.length === 4) state.prng = [e.prng[0], e.prng[1], e.prng[2], e.prng[3]];
}

