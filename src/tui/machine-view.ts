/**
 * The domains and vCPUs pane: every domain in one line, then the selected domain's vCPUs -
 * a scripted vCPU's program counter and next operation, or an x86 vCPU's registers, the
 * VMCS exit information of its last VM exit and the current instruction, disassembled from
 * guest memory as it is at this position.
 */
import { createHash } from 'node:crypto';
import type { DomainId } from '../events/schema.ts';
import type { GuestOp } from '../core/hypervisor/config.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { Domain, X86Vcpu } from '../core/hypervisor/state.ts';
import { disassembleAt } from '../core/machine/inspect.ts';
import { exitReasonName } from '../core/hardware/vmx/exit-reasons.ts';
import type { DomainNames } from '../replay/format.ts';
import { line, type Line } from './span-lines.ts';
import { accent, domainColor, type Theme } from './theme.ts';
import { hex, hexOrNone } from './text.ts';

/** The first 8 hex digits of a key's SHA-256: enough to tell keys apart, and no key material. */
export function keyId(key: Uint8Array): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export function nameOf(names: DomainNames, dom: DomainId): string {
  return dom < 0 ? '-' : names.get(dom) ?? `d${dom}`;
}

function pcpuLine(state: MachineState, names: DomainNames): string {
  const pcpus = state.sched.pcpus.map((p, i) => {
    const running = p.dom < 0 ? 'idle' : `${nameOf(names, p.dom)}.v${p.vcpu}`;
    return `p${i} ${running} (SMM key ${nameOf(names, state.sched.smmLive[i])})`;
  });
  return `tick ${state.tick}  ${state.profile}  ${state.halted ? 'halted' : state.booted ? 'running' : 'not booted'}  pcpus: ${pcpus.join('  ')}`;
}

function guestSummary(d: Domain): string {
  if (d.kind === 'x86') {
    const x86 = d.vcpus[0]?.x86;
    return `x86 ${d.paging} v0 ${x86 ? vcpuMode(x86) : '-'}`;
  }
  return `scripted ${d.vcpus.map((v, i) => `v${i} pc ${v.pc}/${d.programs[i]?.length ?? 0}`).join(' ')}`;
}

function domainLine(state: MachineState, d: Domain, selected: boolean): string {
  const key = state.keyTable.get(d.id);
  return `${selected ? '>' : ' '}${String(d.id).padStart(3)} ${d.name.padEnd(10)} ${d.status.padEnd(7)} ` +
    `${`${d.p2m.size}/${d.maxPages}`.padStart(9)} pages  key ${key ? keyId(key) : '-'.padEnd(8)}  ${guestSummary(d)}`;
}

const vcpuMode = (x86: X86Vcpu): string => (x86.halted ? 'halted' : x86.inGuest ? 'in guest' : 'in hypervisor');

/** A scripted operation in a few words. */
export function opText(op: GuestOp | undefined): string {
  if (op === undefined) return 'none (finished)';
  switch (op.op) {
    case 'write': return `write gpa=${hexOrNone(op.gpa)} ${op.bytes.length}B`;
    case 'read': return `read gpa=${hexOrNone(op.gpa)} len=${op.len}`;
    case 'canary': return `canary gpa=${hexOrNone(op.gpa)}`;
    case 'hypercall': return `hypercall ${op.call}${op.args.length ? ` ${op.args.join(',')}` : ''}`;
    case 'repeat': return `repeat x${op.times}`;
    case 'end': return 'end of repeat';
    default: return op.op;
  }
}

function scriptedLines(d: Domain): string[] {
  return d.vcpus.map((v, i) => {
    const program = d.programs[i] ?? [];
    return `${d.name} v${i}: pc ${v.pc} of ${program.length}, next ${opText(program[v.pc])}${v.loops.length ? `, loops [${v.loops.join(',')}]` : ''}`;
  });
}

const reg = (name: string, value: number): string => `${name}=${hex(value)}`;

/**
 * The local APIC timer's fields as the model keeps them, listed by name: the model is still
 * growing (LVT, counts, deadline), and the pane should show whatever it has.
 */
export function lapicText(lapic: Record<string, unknown>): string {
  if (lapic.deadline === -1) return 'off';
  return Object.entries(lapic).map(([name, value]) => {
    if (typeof value === 'number') return `${name}=${/lvt|vector/i.test(name) ? hexOrNone(value) : value}`;
    return `${name}=${String(value)}`;
  }).join(' ');
}

function x86Lines(state: MachineState, d: Domain, v: number, x86: X86Vcpu): string[] {
  const c = x86.cpu;
  const g = c.gpr;
  const instruction = d.status === 'running' ? disassembleAt(state, d.id, v, c.eip) : '(domain is dead)';
  const e = x86.exit;
  const exit = e.reason < 0 ? 'no VM exit yet' :
    `last VM exit ${exitReasonName(e.reason)} (${e.reason}) qual=${hexOrNone(e.qualification)} gla=${hexOrNone(e.gla)} ` +
    `gpa=${hexOrNone(e.gpa)} len=${e.length} vector=${hexOrNone(e.vector)} error=${hexOrNone(e.errorCode)}`;
  const timer = lapicText(x86.lapic as unknown as Record<string, unknown>);
  return [
    `${d.name} v${v} ${vcpuMode(x86)}  eip=${hex(c.eip)}  ${instruction}`,
    `  ${reg('eax', g[0])} ${reg('ecx', g[1])} ${reg('edx', g[2])} ${reg('ebx', g[3])}`,
    `  ${reg('esp', g[4])} ${reg('ebp', g[5])} ${reg('esi', g[6])} ${reg('edi', g[7])}`,
    `  ${reg('eflags', c.eflags)} ${reg('cr0', c.cr0)} ${reg('cr2', c.cr2)} ${reg('cr3', c.cr3)}`,
    `  ${reg('cr4', c.cr4)} ${reg('idtr', c.idtrBase)}/${hexOrNone(c.idtrLimit)} vpid=${x86.vpid} inject=${x86.injection ? hexOrNone(x86.injection.vector) : '-'}`,
    `  ${exit}`,
    `  TLB ${x86.tlb.size} entries, shadow ${x86.shadow.size}, APIC timer ${timer}`,
  ];
}

function vcpuLines(state: MachineState, d: Domain): string[] {
  if (d.vcpus.length === 0) return [`${d.name} has no vCPUs${d.id === 0 ? ': dom0 acts through the scenario\'s dom0 actions' : ''}`];
  if (d.kind !== 'x86') return scriptedLines(d);
  return d.vcpus.flatMap((v, i) => (v.x86 ? x86Lines(state, d, i, v.x86) : []));
}

/** The domain shown in detail: the asked one if it exists, else the first guest. */
export function selectedDomain(state: MachineState, dom: DomainId | undefined): Domain | undefined {
  const domains = [...state.domains.values()];
  return domains.find((d) => d.id === dom) ?? domains.find((d) => d.id !== 0) ?? domains[0];
}

/** The pane's lines: pCPUs, a window of domains around the selected one, its vCPUs. */
export function machineLines(state: MachineState, names: DomainNames, dom: DomainId | undefined, rows: number, theme: Theme): Line[] {
  const domains = [...state.domains.values()];
  if (domains.length === 0) return [line(pcpuLine(state, names)), line('no domains yet (the machine has not booted)')];
  const selected = selectedDomain(state, dom)!;
  const details = vcpuLines(state, selected).map((text) => line(text));
  const room = Math.max(1, rows - 1 - details.length);
  const at = domains.indexOf(selected);
  const first = Math.max(0, Math.min(at - Math.floor(room / 2), domains.length - room));
  const list = domains.slice(first, first + room).map((d) =>
    line(domainLine(state, d, d === selected), d === selected ? accent(theme, 'selected') : domainColor(theme, d.id)));
  return [line(pcpuLine(state, names)), ...list, ...details].slice(0, rows);
}
