/**
 * A deterministic round-robin scheduler: pCPUs take turns; each runs its vCPU for a quantum
 * of operations, then the next runnable vCPU (after the last one picked) is switched in.
 * Every switch is Xen's context_switch, which tells SMM whose key is live (hook 2).
 */
import { NO_DOMAIN, type DomainId, type EventOf } from '../../events/schema.ts';
import { hasFlaw } from './flaws.ts';
import { advanceTurn } from './pcpu-turns.ts';
import { resolveControl } from './scripted-vcpu.ts';
import type { Host, HostState } from './state.ts';
import { preempt } from './vmx/vcpu-run.ts';
import { canWake } from './vmx/vcpu.ts';

export interface VcpuRef {
  dom: DomainId;
  vcpu: number;
}

const key = (ref: VcpuRef): number => ref.dom * 256 + ref.vcpu;

export function isRunnable(state: HostState, dom: DomainId, vcpu: number): boolean {
  const domain = state.domains.get(dom);
  if (domain === undefined || domain.status !== 'running') return false;
  const x86 = domain.vcpus[vcpu]?.x86;
  if (x86) return !x86.halted || canWake(x86, state.tick);
  const program = domain.programs[vcpu];
  const context = domain.vcpus[vcpu];
  return program !== undefined && context !== undefined && resolveControl(program, context.pc, context.loops) !== undefined;
}

/** Whether any vCPU can run: the pCPUs' own first, the usual answer, without building a list. */
export function anyRunnable(state: HostState): boolean {
  for (const p of state.sched.pcpus) if (p.dom !== NO_DOMAIN && isRunnable(state, p.dom, p.vcpu)) return true;
  for (const domain of state.domains.values()) {
    for (let vcpu = 0; vcpu < domain.vcpus.length; vcpu++) if (isRunnable(state, domain.id, vcpu)) return true;
  }
  return false;
}

/**
 * Whether the pCPU whose turn it is passes it: it runs nothing, and every runnable vCPU
 * (there is one) is running on another pCPU. What scheduleStep would decide, without
 * building lists: on a machine with more pCPUs than work this is every other step.
 */
export function passesTurn(state: HostState): boolean {
  const pcpu = state.sched.turn;
  if (state.sched.pcpus[pcpu].dom !== NO_DOMAIN) return false;
  let elsewhere = false;
  for (const domain of state.domains.values()) {
    for (let vcpu = 0; vcpu < domain.vcpus.length; vcpu++) {
      if (!isRunnable(state, domain.id, vcpu)) continue;
      if (!runningElsewhere(state, pcpu, domain.id, vcpu)) return false;
      elsewhere = true;
    }
  }
  return elsewhere;
}

function runningElsewhere(state: HostState, pcpu: number, dom: DomainId, vcpu: number): boolean {
  const pcpus = state.sched.pcpus;
  for (let i = 0; i < pcpus.length; i++) if (i !== pcpu && pcpus[i].dom === dom && pcpus[i].vcpu === vcpu) return true;
  return false;
}

/** The pCPU whose turn it is has nothing to run: it lets the tick go by. */
export function passTurn(host: Host): void {
  host.emit('sched.idle', { pcpu: host.state.sched.turn, ticks: 0 });
}

/** Runnable vCPUs in round-robin order. */
export function runnableVcpus(state: HostState): VcpuRef[] {
  const refs: VcpuRef[] = [];
  for (const domain of state.domains.values()) {
    for (let vcpu = 0; vcpu < domain.vcpus.length; vcpu++) {
      if (isRunnable(state, domain.id, vcpu)) refs.push({ dom: domain.id, vcpu });
    }
  }
  return refs.sort((a, b) => key(a) - key(b));
}

/** The next vCPU for `pcpu` after the cursor, skipping those other pCPUs are running. */
function pickNext(state: HostState, pcpu: number, runnable: VcpuRef[]): VcpuRef | undefined {
  const busy = new Set(state.sched.pcpus.filter((_, i) => i !== pcpu && _.dom !== NO_DOMAIN).map(key));
  const free = runnable.filter((ref) => !busy.has(key(ref)));
  return free.find((ref) => key(ref) > state.sched.cursor) ?? free[0];
}

/**
 * One scheduling decision for the pCPU whose turn it is: run an operation of its vCPU, or
 * switch, or pass. The caller has checked that some vCPU is runnable.
 */
export function scheduleStep(host: Host, runnable: VcpuRef[], runOperation: (pcpu: number, ref: VcpuRef) => void): void {
  const state = host.state;
  const pcpu = state.sched.turn;
  const current = state.sched.pcpus[pcpu];
  if (current.dom !== NO_DOMAIN && current.quantumLeft > 0 && isRunnable(state, current.dom, current.vcpu)) {
    runOperation(pcpu, current);
    return;
  }
  const domain = state.domains.get(current.dom);
  const x86 = domain?.vcpus[current.vcpu]?.x86;
  if (domain?.status === 'running' && x86?.inGuest) {
    // The time slice is over: the host's timer takes the vCPU out of the guest first.
    preempt({ host, pcpu, domain, vcpu: current.vcpu, x86 });
    return;
  }
  const next = pickNext(state, pcpu, runnable);
  if (next !== undefined) {
    contextSwitch(host, pcpu, next);
  } else if (current.dom !== NO_DOMAIN) {
    contextSwitch(host, pcpu, { dom: NO_DOMAIN, vcpu: 0 });
  } else {
    passTurn(host);
  }
}

/** Xen's context_switch: the pCPU now runs `to`, and SMM is told which key is live. */
function contextSwitch(host: Host, pcpu: number, to: VcpuRef): void {
  const from = host.state.sched.pcpus[pcpu];
  const x86 = host.state.domains.get(to.dom)?.vcpus[to.vcpu]?.x86;
  // The planted flaw no-key-switch leaves the outgoing guest's key live (a pCPU that held none gets one).
  const live = host.state.sched.smmLive[pcpu];
  const smmLive = hasFlaw(host.state, 'no-key-switch') && live !== NO_DOMAIN && to.dom !== NO_DOMAIN ? live : to.dom;
  host.emit('sched.switch', {
    pcpu, fromDom: from.dom, fromVcpu: from.vcpu, toDom: to.dom, toVcpu: to.vcpu,
    smmLive, quantum: x86 ? host.state.config.timeslice : host.state.quantum,
  });
}

// ---- the fold of the scheduler's events ----

export function applySwitch(state: HostState, e: EventOf<'sched.switch'>): void {
  state.sched.pcpus[e.pcpu] = { dom: e.toDom, vcpu: e.toVcpu, quantumLeft: e.quantum };
  state.sched.smmLive[e.pcpu] = e.smmLive;
  if (e.toDom !== NO_DOMAIN) state.sched.cursor = e.toDom * 256 + e.toVcpu;
}

export function applyIdle(state: HostState, e: EventOf<'sched.idle'>): void {
  if (e.ticks > 0) {
    state.tick += e.ticks;
    state.sched.turn = 0;
  } else {
    advanceTurn(state, e.pcpu);
  }
}

export function applyHypercall(state: HostState, e: EventOf<'hypercall'>): void {
  if (e.op !== 'sched_yield') return;
  for (const pcpu of state.sched.pcpus) {
    if (pcpu.dom === e.dom && pcpu.vcpu === e.vcpu) pcpu.quantumLeft = 0;
  }
}
