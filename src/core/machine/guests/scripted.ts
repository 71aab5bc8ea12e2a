/**
 * Scripted guests: a vCPU whose program is a list of high-level operations. One operation
 * is one step and one tick; it reaches memory through the same p2m + SMM path instructions
 * use. The fuzzer generates these programs, so they are a first-class kind of guest.
 */
import { assert } from '../../../events/errors.ts';
import { GUEST_OP_NAMES, type DomainId } from '../../../events/schema.ts';
import { nicPostReceive, nicRegisterWrite, nicSetup, nicTransmit } from './scripted-nic-driver.ts';
import type { Machine } from '../machine.ts';
import { foreignRead, guestRead, guestWrite } from '../../hypervisor/memory/guest-memory.ts';
import { nextBytes, type PrngState } from '../prng.ts';
import { PAGE_SIZE, type Dom0Action, type GuestOp } from '../scenario.ts';
import type { VcpuRef } from '../../hypervisor/scheduler.ts';
import {
  EEXIST, EINVAL, ENOSPC, addToPhysmap, addToPhysmapCheck, attachNic, createCheck, createDomain, decreaseCount, decreaseReservation, destroyDomain, detachNic,
  populateCheck, populatePhysmap,
} from '../../hypervisor/xen.ts';

/**
 * Follows loop control from `pc` to the next operation that takes time. Returns its index
 * and the loop counters at that point, or undefined when the program is finished.
 */
export function resolveControl(program: readonly GuestOp[], pc: number, loops: readonly number[]): { pc: number; loops: number[] } | undefined {
  let at = pc;
  let counters = loops as number[];
  // Every repeat body holds an operation that takes time, so this ends within a pass.
  for (let guard = 0; guard <= 2 * program.length + 2; guard++) {
    const op = program[at];
    if (op === undefined) return undefined;
    if (op.op === 'repeat') {
      if (op.times === 0) { at = op.end + 1; continue; }
      counters = withCounter(counters, op.slot, op.times);
      at += 1;
    } else if (op.op === 'end') {
      const left = (counters[op.slot] ?? 1) - 1;
      counters = withCounter(counters, op.slot, left);
      at = left > 0 ? op.start + 1 : at + 1;
    } else {
      return { pc: at, loops: counters };
    }
  }
  assert(false, () => `loop control did not reach an operation from pc ${pc}`);
}

/** Loop counters with one slot changed (a copy: the caller's list may be the state's). */
function withCounter(counters: readonly number[], slot: number, value: number): number[] {
  const next = [...counters];
  while (next.length <= slot) next.push(0);
  next[slot] = value;
  return next;
}

const opCode = (name: (typeof GUEST_OP_NAMES)[number]): number => GUEST_OP_NAMES.indexOf(name);

/** Runs the next operation of a runnable vCPU on `pcpu`. */
export function runGuestOperation(m: Machine, pcpu: number, ref: VcpuRef): void {
  const domain = m.state.domains.get(ref.dom)!;
  const context = domain.vcpus[ref.vcpu];
  const program = domain.programs[ref.vcpu];
  const resolved = resolveControl(program, context.pc, context.loops);
  assert(resolved !== undefined, () => `vCPU ${ref.dom}.${ref.vcpu} ran with nothing to run`);
  const op = program[resolved.pc];
  assert(op.op !== 'repeat' && op.op !== 'end', 'loop control reached execution');
  m.emit('guest.op', {
    dom: ref.dom, vcpu: ref.vcpu, pcpu, pc: resolved.pc, op: opCode(op.op), next: resolved.pc + 1, loops: resolved.loops,
  });
  execute(m, pcpu, ref, op);
}

function execute(m: Machine, pcpu: number, ref: VcpuRef, op: GuestOp): void {
  switch (op.op) {
    case 'write': guestWrite(m, ref.dom, pcpu, op.gpa, op.bytes); return;
    case 'read': guestRead(m, ref.dom, pcpu, op.gpa, op.len); return;
    case 'canary': plantCanary(m, pcpu, ref.dom, op); return;
    case 'scan': scan(m, pcpu, ref.dom); return;
    case 'hypercall': hypercall(m, ref, op); return;
    case 'exit': destroyDomain(m, ref.dom, 'shutdown'); return;
    case 'yield': return;
    case 'nic_setup':
    case 'nic_tx':
    case 'nic_rx':
    case 'mmio':
      return nicOperation(m, { m, dom: ref.dom, vcpu: ref.vcpu, pcpu }, op);
    case 'repeat':
    case 'end':
      assert(false, 'loop control reached execution');
  }
}

/** A NIC operation: only a domain with a VF has a device to drive (else it is a no-op). */
function nicOperation(m: Machine, c: Parameters<typeof nicSetup>[0], op: Extract<GuestOp, { op: 'nic_setup' | 'nic_tx' | 'nic_rx' | 'mmio' }>): void {
  if (!m.state.io.vfs.some((v) => v.dom === c.dom)) return;
  if (op.op === 'nic_setup') nicSetup(c);
  else if (op.op === 'nic_tx') nicTransmit(c, op.frame, op.buffer);
  else if (op.op === 'nic_rx') nicPostReceive(c, op.buffer);
  else nicRegisterWrite(c, op.bar, op.offset, op.value);
}

/** A secret the guest keeps in memory; the canary-confined invariant watches for it. */
function plantCanary(m: Machine, pcpu: number, dom: DomainId, op: Extract<GuestOp, { op: 'canary' }>): void {
  let secret = op.secret;
  let prng: number[] = [];
  if (secret === null) {
    const draw = [...m.state.prng] as PrngState;
    const hex = Buffer.from(nextBytes(draw, op.len)).toString('hex').slice(0, op.len - 7);
    secret = new TextEncoder().encode(`CANARY-${hex}`);
    prng = draw;
  }
  m.emit('guest.canary', { dom, gpa: op.gpa, secret, prng });
  guestWrite(m, dom, pcpu, op.gpa, secret);
}

/** Reads every page the domain has, in gfn order: what a tenant does to look for leftovers. */
function scan(m: Machine, pcpu: number, dom: DomainId): void {
  const gfns = [...m.state.domains.get(dom)!.p2m.keys()].sort((a, b) => a - b);
  for (const gfn of gfns) guestRead(m, dom, pcpu, gfn * PAGE_SIZE, PAGE_SIZE);
}

function hypercall(m: Machine, ref: VcpuRef, op: Extract<GuestOp, { op: 'hypercall' }>): void {
  const base = { dom: ref.dom, vcpu: ref.vcpu, op: op.call, args: op.args, text: op.text };
  switch (op.call) {
    case 'populate_physmap': {
      const [gfn, count] = op.args;
      const result = populateCheck(m.state, ref.dom, gfn, count);
      m.emit('hypercall', { ...base, result: result === 0 ? count : result });
      if (result === 0) populatePhysmap(m, ref.dom, gfn, count);
      return;
    }
    case 'decrease_reservation': {
      const done = decreaseCount(m.state, ref.dom, op.args);
      m.emit('hypercall', { ...base, result: done });
      if (done > 0) decreaseReservation(m, ref.dom, op.args.slice(0, done));
      return;
    }
    case 'console_write':
      m.emit('hypercall', { ...base, result: op.text.length });
      return;
    case 'sched_yield':
      m.emit('hypercall', { ...base, result: 0 });
      return;
    case 'add_to_physmap': {
      const [domid, gfn, gpfn] = op.args;
      const result = addToPhysmapCheck(m.state, ref.dom, domid, gfn, gpfn);
      m.emit('hypercall', { ...base, result });
      if (result === 0) addToPhysmap(m, ref.dom, domid, gfn, gpfn);
      return;
    }
  }
}

/** A dom0 action from the scenario: the management domain at work. */
export function runDom0Action(m: Machine, index: number): void {
  performDom0Action(m, m.state.config.dom0Actions[index], index);
}

/** Performs a dom0 action; `index` is its place in the scenario, or -1 for one from an input. */
export function performDom0Action(m: Machine, action: Dom0Action, index: number): void {
  const target = [...m.state.domains.values()].find((d) => d.name === action.domain && d.status === 'running');
  switch (action.op) {
    case 'create_domain': {
      const spec = m.state.config.domains.find((d) => d.name === action.domain)!;
      const result = target !== undefined ? EINVAL : createCheck(m.state, spec.memoryKiB);
      m.emit('dom0.op', { index, op: action.op, target: result === 0 ? m.state.nextDomainId : -1, result });
      if (result === 0) createDomain(m, spec.name, spec.memoryKiB, spec.vcpus);
      return;
    }
    case 'destroy_domain':
      m.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: target ? 0 : EINVAL });
      if (target) destroyDomain(m, target.id, 'destroyed by dom0');
      return;
    case 'foreign_read':
      m.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: target ? 0 : EINVAL });
      if (target) foreignRead(m, target.id, action.gfn, action.offset, action.len);
      return;
    case 'assign_vf': {
      // The PF driver needs the domain's port settings (MAC, VLAN) from the scenario.
      const spec = m.state.config.domains.find((d) => d.name === action.domain);
      const has = target !== undefined && m.state.io.vfs.some((v) => v.dom === target.id);
      const free = m.state.io.vfs.filter((v) => v.dom >= 0).length < m.state.config.network.vfs;
      const result = target === undefined || !spec?.nic ? EINVAL : has ? EEXIST : !free ? ENOSPC : 0;
      m.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result });
      if (result === 0) attachNic(m, target!.id);
      return;
    }
    case 'deassign_vf': {
      const has = target !== undefined && m.state.io.vfs.some((v) => v.dom === target.id);
      m.emit('dom0.op', { index, op: action.op, target: target?.id ?? -1, result: has ? 0 : EINVAL });
      if (has) detachNic(m, target!.id);
      return;
    }
    case 'crash_backend':
      // dom0's fault: in vanilla every guest's I/O stops; SIOM's path does not pass through dom0.
      m.emit('dom0.op', { index, op: action.op, target: -1, result: 0 });
      m.emit('netback.state', { up: false, reason: 'dom0 network backend crashed' });
      return;
  }
}
