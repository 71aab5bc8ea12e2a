/**
 * evolve(state, event): applies one fact to the state. It never decides anything and never
 * computes what an event already carries, so folding a recording never re-executes.
 *
 * Written as mutation: the live machine applies it to its working state, the timeline
 * applies it to an immer draft. One function, two uses.
 */
import { assert } from '../events/errors.ts';
import { GUEST_OP_NAMES, NO_DOMAIN, NO_FRAME, type Event, type EventOf } from '../events/schema.ts';
import { PAGE_SIZE, compileOpsValue } from './scenario.ts';
import type { Domain, MachineState } from './state.ts';

const YIELD_OP = GUEST_OP_NAMES.indexOf('yield');

export function evolve(state: MachineState, event: Event): void {
  switch (event.kind) {
    case 'machine.boot': state.booted = true; return;
    case 'machine.halt': state.halted = true; return;
    case 'guest.op': return applyGuestOp(state, event);
    case 'sched.switch': return applySwitch(state, event);
    case 'sched.idle': return applyIdle(state, event);
    case 'dom0.op': state.dom0Next = event.index + 1; return;
    case 'input':
      if (event.index >= 0) state.inputNext = event.index + 1;
      return applyInput(state, event.key, event.value);
    case 'mem.write': return applyWrite(state, event);
    case 'p2m.update': return applyP2m(state, event);
    case 'smm.ppt.update': return applyPpt(state, event);
    case 'smm.scrub': state.memory.delete(event.mfn); return;
    case 'smm.key.assign': state.keyTable.set(event.dom, event.key); return;
    case 'smm.key.revoke': state.keyTable.delete(event.dom); return;
    case 'domain.create': return applyCreate(state, event);
    case 'domain.destroy': domainOf(state, event.dom).status = 'dead'; return;
    case 'hypercall': return applyHypercall(state, event);
    case 'guest.canary': return applyCanary(state, event);
    case 'violation': state.violations += 1; return;
    case 'mem.read':
    case 'mem.encrypt':
    case 'mem.decrypt':
    case 'mem.fault':
    case 'dom0.foreign_read':
      return; // observations: they change nothing
  }
}

function domainOf(state: MachineState, dom: number): Domain {
  const domain = state.domains.get(dom);
  assert(domain !== undefined, `event names domain ${dom}, which does not exist`);
  return domain;
}

/** The pCPU that just took a step hands over; a full round of pCPUs is one tick. */
function advanceTurn(state: MachineState, pcpu: number): void {
  state.sched.turn = (pcpu + 1) % state.sched.pcpus.length;
  if (state.sched.turn === 0) state.tick += 1;
}

function applyGuestOp(state: MachineState, e: EventOf<'guest.op'>): void {
  const vcpu = domainOf(state, e.dom).vcpus[e.vcpu];
  vcpu.pc = e.next;
  vcpu.loops = e.loops;
  const pcpu = state.sched.pcpus[e.pcpu];
  pcpu.quantumLeft = e.op === YIELD_OP ? 0 : Math.max(0, pcpu.quantumLeft - 1);
  advanceTurn(state, e.pcpu);
}

function applySwitch(state: MachineState, e: EventOf<'sched.switch'>): void {
  state.sched.pcpus[e.pcpu] = { dom: e.toDom, vcpu: e.toVcpu, quantumLeft: e.quantum };
  state.sched.smmLive[e.pcpu] = e.smmLive;
  if (e.toDom !== NO_DOMAIN) state.sched.cursor = e.toDom * 256 + e.toVcpu;
}

function applyIdle(state: MachineState, e: EventOf<'sched.idle'>): void {
  if (e.ticks > 0) {
    state.tick += e.ticks;
    state.sched.turn = 0;
  } else {
    advanceTurn(state, e.pcpu);
  }
}

function applyWrite(state: MachineState, e: EventOf<'mem.write'>): void {
  const old = state.memory.get(e.mfn);
  const bytes = new Uint8Array(PAGE_SIZE);
  if (old !== undefined) bytes.set(old.bytes);
  bytes.set(e.stored, e.offset);
  state.memory.set(e.mfn, { bytes, writer: e.dom });
}

function applyP2m(state: MachineState, e: EventOf<'p2m.update'>): void {
  const domain = domainOf(state, e.dom);
  if (e.prevMfn !== NO_FRAME) {
    const back = state.m2p.get(e.prevMfn);
    if (back !== undefined && back.dom === e.dom && back.gfn === e.gfn) state.m2p.delete(e.prevMfn);
  }
  if (e.mfn === NO_FRAME) {
    domain.p2m.delete(e.gfn);
  } else {
    domain.p2m.set(e.gfn, e.mfn);
    state.m2p.set(e.mfn, { dom: e.dom, gfn: e.gfn });
  }
}

/** Ownership changes also move the frame between the free pool and its owner. */
function applyPpt(state: MachineState, e: EventOf<'smm.ppt.update'>): void {
  if (e.owner === NO_DOMAIN) {
    state.ppt.delete(e.mfn);
    state.freeStack.push(e.mfn);
    return;
  }
  if (e.prevOwner === NO_DOMAIN) takeFromFreePool(state, e.mfn);
  state.ppt.set(e.mfn, { owner: e.owner, rights: e.rights });
}

function takeFromFreePool(state: MachineState, mfn: number): void {
  const top = state.freeStack.length - 1;
  if (top >= 0 && state.freeStack[top] === mfn) {
    state.freeStack.pop();
  } else if (mfn === state.nextFresh) {
    state.nextFresh += 1;
  } else {
    const index = state.freeStack.lastIndexOf(mfn);
    if (index >= 0) state.freeStack.splice(index, 1);
  }
}

function applyCreate(state: MachineState, e: EventOf<'domain.create'>): void {
  const spec = state.config.domains.find((d) => d.name === e.name);
  state.domains.set(e.dom, {
    id: e.dom,
    name: e.name,
    status: 'running',
    memoryKiB: e.memoryKiB,
    maxPages: (spec?.maxMemoryKiB ?? e.memoryKiB) / 4,
    p2m: new Map(),
    vcpus: Array.from({ length: e.vcpus }, () => ({ pc: 0, loops: [] })),
    programs: spec?.programs ?? [],
  });
  state.nextDomainId = e.dom + 1;
}

function applyHypercall(state: MachineState, e: EventOf<'hypercall'>): void {
  if (e.op !== 'sched_yield') return;
  for (const pcpu of state.sched.pcpus) {
    if (pcpu.dom === e.dom && pcpu.vcpu === e.vcpu) pcpu.quantumLeft = 0;
  }
}

function applyCanary(state: MachineState, e: EventOf<'guest.canary'>): void {
  state.canaries.push({ dom: e.dom, gpa: e.gpa, secret: e.secret });
  if (e.prng.length === 4) state.prng = [e.prng[0], e.prng[1], e.prng[2], e.prng[3]];
}

/** A modification from outside the machine (a fork's --set, a scenario input). */
function applyInput(state: MachineState, key: string, value: string): void {
  const parts = key.split('.');
  if (key === 'profile') {
    state.profile = value as MachineState['profile'];
  } else if (key === 'quantum') {
    state.quantum = Number(value);
  } else if (parts[0] === 'flaw') {
    state.flaws = state.flaws.filter((f) => f !== parts[1]);
    if (value === 'on') state.flaws.push(parts[1]);
  } else if (parts[0] === 'domain' && parts[2] === 'ops') {
    // A domain that is not running (not created yet, or dead) has no program to replace.
    const domain = [...state.domains.values()].find((d) => d.name === parts[1] && d.status === 'running');
    if (domain === undefined) return;
    domain.programs = [compileOpsValue(value), ...domain.programs.slice(1)];
    domain.vcpus[0] = { pc: 0, loops: [] };
  } else {
    assert(false, `input with unknown key ${key} reached evolve`);
  }
}
