/**
 * evolve(state, event): applies one fact to the state. It never decides anything and never
 * computes what an event already carries, so folding a recording never re-executes.
 *
 * Written as mutation: the live machine applies it to its working state, the timeline
 * applies it to an immer draft. One function, two uses. `live` says the state is a live
 * machine's own working state, whose private pages may be written in place.
 */
import { assert } from '../../events/errors.ts';
import { GUEST_OP_NAMES, NO_DOMAIN, NO_FRAME, type Event, type EventOf } from '../../events/schema.ts';
import { applyCpuDelta, resetCpu } from '../hardware/cpu/cpu-state.ts';
import { eptSet } from '../hardware/paging/ept.ts';
import { resetLapic } from '../hardware/vmx/lapic.ts';
import { PCI_CONFIG_ADDRESS_PORT, evolveIo } from '../hypervisor/io/io-evolve.ts';
import { PAGE_SIZE, compileOpsValue, type DomainSpec } from './scenario.ts';
import { isPrivatePage, makePagePrivate, type Domain, type MachineState, type Vcpu, type X86Vcpu } from './state.ts';
import { forgetDecodes } from '../hardware/cpu/interpreter.ts';

const YIELD_OP = GUEST_OP_NAMES.indexOf('yield');

export function evolve(state: MachineState, event: Event, live = false): void {
  switch (event.kind) {
    // The hottest kinds first: a retired instruction and its stores.
    case 'cpu.step': return applyCpuStep(state, event);
    case 'mem.write': return applyWrite(state, event, live);
    case 'machine.boot': state.booted = true; return;
    case 'machine.halt': state.halted = true; return;
    case 'guest.op': return applyGuestOp(state, event);
    case 'sched.switch': return applySwitch(state, event);
    case 'sched.idle': return applyIdle(state, event);
    case 'dom0.op':
      // An action from an input (index -1) leaves the scenario's own list where it was.
      if (event.index >= 0) state.dom0Next = event.index + 1;
      return;
    case 'input':
      // Something from outside reaches a machine that had halted: it decides again.
      state.halted = false;
      if (event.index >= 0) state.inputNext = event.index + 1;
      return applyInput(state, event.key, event.value);
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
    case 'exception': return applyException(state, event);
    case 'vm.exit': return applyExit(state, event);
    case 'vm.entry': return applyEntry(state, event);
    case 'vmcs.write': return applyVmcsWrite(state, event);
    case 'vcpu.halt': {
      const x86 = x86Of(state, event.dom, event.vcpu);
      applyCpuDelta(x86.cpu, event.delta);
      x86.halted = true;
      return;
    }
    case 'tlb.fill': return applyTlbFill(state, event);
    case 'tlb.flush': return applyTlbFlush(state, event);
    case 'ept.update': eptSet(domainOf(state, event.dom).ept, event.gfn, event.mfn < 0 ? undefined : { mfn: event.mfn, bits: event.bits }); return;
    case 'shadow.sync': return applyShadowSync(state, event);
    case 'lapic.timer': {
      const { lvt, initialCount, deadline, pending } = event;
      x86Of(state, event.dom, event.vcpu).lapic = { lvt, initialCount, deadline, pending };
      return;
    }
    case 'io': {
      // A guest's write of CONFIG_ADDRESS latches the configuration cycle its next data access makes.
      if (event.out && event.port === PCI_CONFIG_ADDRESS_PORT && event.size === 4) state.io.cf8.set(event.dom, event.value);
      return;
    }
    case 'pci.cfg':
    case 'pci.mmio':
    case 'vtd.op':
    case 'dma.request':
    case 'msi':
    case 'nic.vf':
    case 'nic.reg':
    case 'net.frame':
    case 'siom.buffer':
    case 'netback.copy':
    case 'netback.state':
    case 'wire.rx':
      return evolveIo(state, event);
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
  assert(domain !== undefined, () => `event names domain ${dom}, which does not exist`);
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

function applyWrite(state: MachineState, e: EventOf<'mem.write'>, live: boolean): void {
  const old = state.memory.get(e.mfn);
  if (live && old !== undefined && isPrivatePage(old.bytes)) {
    // Bytes only this machine holds: written in place, saving a page copy per store.
    old.bytes.set(e.stored, e.offset);
    // In vanilla the CPU fetches the stored bytes themselves: their cached decodes are stale.
    if (state.profile === 'vanilla') forgetDecodes(old.bytes);
    if (old.writer !== e.dom) state.memory.set(e.mfn, { bytes: old.bytes, writer: e.dom });
    return;
  }
  // A new page (snapshots and clones share the old one), copied in one pass (never a Buffer view).
  const bytes = old !== undefined ? new Uint8Array(old.bytes) : new Uint8Array(PAGE_SIZE);
  bytes.set(e.stored, e.offset);
  state.memory.set(e.mfn, { bytes, writer: e.dom });
  if (live) makePagePrivate(bytes);
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
    vcpus: Array.from({ length: e.vcpus }, (_, v): Vcpu => ({ pc: 0, loops: [], x86: spec?.image ? newX86Vcpu(spec, e.dom, v) : null })),
    programs: spec?.programs ?? [],
    kind: spec?.image ? 'x86' : 'scripted',
    paging: spec?.paging ?? 'ept',
    ept: new Map(),
  });
  state.nextDomainId = e.dom + 1;
}

/** A vCPU at reset: out of the guest until its first VM entry (VMLAUNCH). */
function newX86Vcpu(spec: DomainSpec, dom: number, vcpu: number): X86Vcpu {
  return {
    cpu: resetCpu(spec.image!.entry, spec.image!.stack),
    vpid: dom * 8 + vcpu + 1,
    exit: { reason: -1, qualification: 0, gla: -1, gpa: -1, length: 0, vector: -1, errorCode: -1 },
    inGuest: false,
    halted: false,
    injection: null,
    tlb: new Map(),
    shadow: new Map(),
    lapic: resetLapic(),
    irr: [],
  };
}

function x86Of(state: MachineState, dom: number, vcpu: number): X86Vcpu {
  const x86 = domainOf(state, dom).vcpus[vcpu]?.x86;
  assert(x86 !== undefined && x86 !== null, () => `event names x86 vCPU ${dom}.${vcpu}, which does not exist`);
  return x86;
}

/** The vCPUs an event names: one, or (-1) all of the domain's. */
function x86Vcpus(state: MachineState, dom: number, vcpu: number): X86Vcpu[] {
  if (vcpu >= 0) return [x86Of(state, dom, vcpu)];
  return domainOf(state, dom).vcpus.flatMap((v) => (v.x86 ? [v.x86] : []));
}

function usedPcpu(state: MachineState, pcpu: number): void {
  const p = state.sched.pcpus[pcpu];
  p.quantumLeft = Math.max(0, p.quantumLeft - 1);
  advanceTurn(state, pcpu);
}

function applyCpuStep(state: MachineState, e: EventOf<'cpu.step'>): void {
  // x86Of's lookup with its checks inline (this runs per instruction).
  const x86 = state.domains.get(e.dom)?.vcpus[e.vcpu]?.x86;
  const cpu = (x86 === undefined || x86 === null ? x86Of(state, e.dom, e.vcpu) : x86).cpu;
  applyCpuDelta(cpu, e.delta);
  cpu.eip = e.next;
  usedPcpu(state, e.pcpu);
}

function applyException(state: MachineState, e: EventOf<'exception'>): void {
  applyCpuDelta(x86Of(state, e.dom, e.vcpu).cpu, e.delta);
  usedPcpu(state, e.pcpu);
}

function applyExit(state: MachineState, e: EventOf<'vm.exit'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  x86.inGuest = false;
  x86.exit = { reason: e.reason, qualification: e.qualification, gla: e.gla, gpa: e.gpa, length: e.length, vector: e.vector, errorCode: e.errorCode };
  advanceTurn(state, e.pcpu);
}

function applyEntry(state: MachineState, e: EventOf<'vm.entry'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  applyCpuDelta(x86.cpu, e.delta);
  x86.inGuest = true;
  x86.halted = false;
  x86.injection = null;
  // An external interrupt taken leaves the request register (one bit per vector, as in the APIC's IRR).
  if (e.inject >= 0 && x86.irr.includes(e.inject)) x86.irr = x86.irr.filter((v) => v !== e.inject);
}

function applyVmcsWrite(state: MachineState, e: EventOf<'vmcs.write'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  applyCpuDelta(x86.cpu, e.delta);
  x86.injection = e.inject < 0 ? null : { vector: e.inject, errorCode: e.errorCode, cr2: e.cr2 };
}

/** A fill goes to the end (the newest); the evicted entry, if any, was the oldest. */
function applyTlbFill(state: MachineState, e: EventOf<'tlb.fill'>): void {
  const tlb = x86Of(state, e.dom, e.vcpu).tlb;
  if (e.evicted >= 0) tlb.delete(e.evicted);
  tlb.delete(e.page);
  tlb.set(e.page, { mfn: e.mfn, flags: e.flags });
}

function applyTlbFlush(state: MachineState, e: EventOf<'tlb.flush'>): void {
  for (const x86 of x86Vcpus(state, e.dom, e.vcpu)) {
    if (e.scope === 'page') x86.tlb.delete(e.page);
    else x86.tlb.clear();
  }
}

function applyShadowSync(state: MachineState, e: EventOf<'shadow.sync'>): void {
  for (const x86 of x86Vcpus(state, e.dom, e.vcpu)) {
    if (e.op === 'fill') x86.shadow.set(e.page, { mfn: e.mfn, flags: e.flags });
    else if (e.page < 0) x86.shadow.clear();
    else x86.shadow.delete(e.page);
  }
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
