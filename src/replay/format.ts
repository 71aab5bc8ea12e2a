/**
 * Text and JSON views of events and states, shared by the command line and the TUI.
 */
import { pciBdfFormat } from '../core/hardware/pci/index.ts';
import { createHash } from 'node:crypto';
import { bytesText, stringText } from '../events/event-text.ts';
import { EVENT_FIELDS, GUEST_OP_NAMES, type DomainId, type Event, type EventKind } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import { ExitReason, exitReasonName } from '../core/hardware/vmx/exit-reasons.ts';
import { disassembleAt } from '../core/machine/inspect.ts';
import { readRegister } from '../core/hardware/cpu/cpu-state.ts';
import { evolve } from '../core/machine/evolve.ts';
import type { Seq } from '../events/schema.ts';
import type { Timeline } from './timeline.ts';

export type DomainNames = ReadonlyMap<DomainId, string>;

const DOMAIN_FIELDS = new Set(['dom', 'fromDom', 'toDom', 'target', 'owner', 'prevOwner', 'smmLive', 'keyDom', 'tag']);
const HEX_FIELDS = new Set(['gpa', 'eip', 'next', 'cr2', 'gla', 'qualification', 'page', 'evicted', 'port', 'iova', 'hpa', 'address', 'fault']);
const SID_FIELDS = new Set(['sid', 'bdf']);

/** VT-d effects as their kinds ("iotlb.fill,frcd"), not their JSON. */
function effectsText(json: string): string {
  if (json === '') return '-';
  return (JSON.parse(json) as { kind: string }[]).map((e) => e.kind).join(',');
}
/** Register names of the cpu delta indices (src/core/hardware/cpu/cpu-state.ts). */
export const REGISTER_NAMES = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eip', 'eflags', 'cr0', 'cr2', 'cr3', 'cr4', 'idtr.base', 'idtr.limit', 'interruptibility'];
const VECTOR_NAMES: Record<number, string> = { 0: '#DE', 6: '#UD', 8: '#DF', 13: '#GP', 14: '#PF' };

/** A register delta as "eax=0x5 eflags=0x46". */
export function deltaText(delta: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < delta.length; i += 2) parts.push(`${REGISTER_NAMES[delta[i]] ?? `r${delta[i]}`}=0x${(delta[i + 1] >>> 0).toString(16)}`);
  return parts.join(' ');
}
function fieldText(kind: EventKind, name: string, value: unknown, names: DomainNames): string {
  if (value instanceof Uint8Array) return bytesText(value);
  if (name === 'effects' && typeof value === 'string') return effectsText(value);
  if (typeof value === 'number' && SID_FIELDS.has(name)) return value < 0 ? '-' : pciBdfFormat(value);
  if (kind === 'guest.op' && name === 'op') return GUEST_OP_NAMES[value as number] ?? String(value);
  if (name === 'delta' && Array.isArray(value)) return `[${deltaText(value as number[])}]`;
  if (name === 'reason' && kind === 'vm.exit') return `${exitReasonName(value as number)}(${value})`;
  if ((name === 'vector' || name === 'inject') && typeof value === 'number') return value < 0 ? '-' : `${VECTOR_NAMES[value] ?? ''}0x${value.toString(16)}`;
  if (typeof value === 'number' && value === -1 && name !== 'result') return '-';
  if (typeof value === 'number' && DOMAIN_FIELDS.has(name)) return value < 0 ? '-' : names.get(value) ?? `d${value}`;
  if (typeof value === 'number' && HEX_FIELDS.has(name)) return `0x${value.toString(16)}`;
  if (Array.isArray(value)) return `[${value.join(',')}]`;
  return typeof value === 'string' ? stringText(value) : String(value);
}

/** What String() and bytesText make of values besides numbers: booleans, zero(NB), NaN and Infinity. */
const VALUE_TEXT = ['true', 'false', 'zero', 'NaN', 'Infinity'];
const EXIT_REASON_TEXT = [...Object.values(ExitReason).map(exitReasonName), 'EXIT_'];
const VECTOR_TEXT = Object.values(VECTOR_NAMES).map((name) => `${name}0x`);
/** deltaText's names, and r<index> for an index past them (a word's first three characters are all its trigrams need). */
const DELTA_TEXT = [...REGISTER_NAMES, ...Array.from({ length: 100 }, (_, i) => `r${String(i).padStart(2, '0')}`)];

/**
 * Every word a field's text can hold other than numbers (digits, hex, 0x), the text of its
 * strings and bytes (fieldText says what those show) and the domain names of the run: the
 * vocabulary the chunk index's text filter cannot see (replay/chunk-search.ts). It must keep
 * in step with fieldText: test/chunk-index.test.ts checks random lines against it.
 */
export function fieldWords(kind: EventKind, name: string): readonly string[] {
  if (name === 'delta') return DELTA_TEXT;
  if (name === 'reason' && kind === 'vm.exit') return EXIT_REASON_TEXT;
  if (name === 'vector' || name === 'inject') return VECTOR_TEXT;
  if (kind === 'guest.op' && name === 'op') return GUEST_OP_NAMES;
  return VALUE_TEXT;
}

/** One line: the kind and its fields as name=value. */
export function eventText(event: Event, names: DomainNames = new Map()): string {
  const fields = EVENT_FIELDS[event.kind] as readonly string[];
  const record = event as unknown as Record<string, unknown>;
  return `${event.kind} ${fields.map((f) => `${f}=${fieldText(event.kind, f, record[f], names)}`).join(' ')}`;
}

/** An event as JSON-safe data: bytes as hex strings. */
export function eventJson(seq: number, event: Event): Record<string, unknown> {
  const out: Record<string, unknown> = { seq };
  for (const [key, value] of Object.entries(event)) out[key] = value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value;
  return out;
}

export function domainNames(state: MachineState): Map<DomainId, string> {
  return new Map([...state.domains.values()].map((d) => [d.id, d.name]));
}

/** Groups sorted numbers into "a-b" ranges for compact display. */
export function ranges(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

const keyId = (key: Uint8Array): string => createHash('sha256').update(key).digest('hex').slice(0, 16);

/** The state as data for `state --json` and for the text view below. */
export function stateView(state: MachineState, seq: number) {
  const owners = new Map<DomainId, number[]>();
  for (const [mfn, entry] of state.ppt) owners.set(entry.owner, [...(owners.get(entry.owner) ?? []), mfn]);
  return {
    seq,
    tick: state.tick,
    profile: state.profile,
    flaws: state.flaws,
    booted: state.booted,
    halted: state.halted,
    violations: state.violations,
    frames: {
      total: state.config.frames,
      owned: state.ppt.size,
      free: state.freeStack.length + (state.config.frames - state.nextFresh),
      holdingData: state.memory.size,
    },
    domains: [...state.domains.values()].map((d) => ({
      id: d.id,
      name: d.name,
      status: d.status,
      pages: d.p2m.size,
      maxPages: d.maxPages,
      frames: ranges([...d.p2m.values()]),
      vcpus: d.vcpus.map((v, i) => (v.x86 ? {
        vcpu: i,
        kind: 'x86' as const,
        mode: v.x86.halted ? 'halted' : v.x86.inGuest ? 'in guest' : 'in hypervisor',
        instruction: d.status === 'running' ? disassembleAt(state, d.id, i, v.x86.cpu.eip) : null,
        registers: Object.fromEntries(REGISTER_NAMES.map((name, r) => [name, readRegister(v.x86!.cpu, r)])) as Record<string, number>,
        lastExit: v.x86.exit.reason < 0 ? null : { ...v.x86.exit, reasonName: exitReasonName(v.x86.exit.reason) },
        tlbEntries: v.x86.tlb.size,
        shadowEntries: v.x86.shadow.size,
        lapic: v.x86.lapic,
      } : { vcpu: i, kind: 'scripted' as const, pc: v.pc, ops: d.programs[i]?.length ?? 0, loops: v.loops })),
      paging: d.kind === 'x86' ? d.paging : null,
      key: state.keyTable.has(d.id) ? keyId(state.keyTable.get(d.id)!) : null,
    })),
    pcpus: state.sched.pcpus.map((p, i) => ({ pcpu: i, dom: p.dom, vcpu: p.vcpu, quantumLeft: p.quantumLeft, smmLive: state.sched.smmLive[i] })),
    pagePermissionTable: [...owners.entries()].map(([owner, mfns]) => ({ owner, frames: ranges(mfns) })),
    canaries: state.canaries.map((c) => ({ dom: c.dom, gpa: c.gpa, secret: Buffer.from(c.secret).toString('latin1') })),
    io: ioView(state),
  };
}

/** The I/O state in brief: VT-d, the VFs, SIOM's buffers, dom0's backend. */
function ioView(state: MachineState) {
  const { vtd, xenVtd, vfs, siom, netbackUp } = state.io;
  return {
    vtd: {
      enabled: xenVtd.enabled,
      devices: [...xenVtd.devices].map(([sid, dom]) => ({ device: pciBdfFormat(sid), dom })),
      contextCacheEntries: vtd.contextCache.size,
      iotlbEntries: vtd.iotlb.size,
      remappedInterrupts: xenVtd.irtes.size,
      faultsPending: vtd.frcd.filter((r) => r.f).length,
    },
    vfs: vfs.map((v) => ({ vf: v.vf, device: pciBdfFormat(v.bdf), dom: v.dom, mac: v.mac, vlan: v.vlan, spoofcheck: v.spoofcheck })),
    siom: { tx: Object.fromEntries(siom.tx), rx: Object.fromEntries(siom.rx) },
    netbackUp,
  };
}

const hex = (value: number): string => `0x${(value >>> 0).toString(16).padStart(8, '0')}`;

type VcpuView = ReturnType<typeof stateView>['domains'][number]['vcpus'][number];
type X86View = Extract<VcpuView, { kind: 'x86' }>;

function vcpuLines(v: VcpuView): string[] {
  if (v.kind !== 'x86') return [];
  return x86Lines(v as X86View);
}

function x86Lines(v: X86View): string[] {
  const r = v.registers;
  const gprs = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'].map((n) => `${n}=${hex(r[n])}`).join(' ');
  const exit = v.lastExit ? `last exit ${v.lastExit.reasonName} qual ${hex(v.lastExit.qualification)}` : 'no exit yet';
  return [
    `      v${v.vcpu} ${v.mode}  eip=${hex(r.eip)}  ${v.instruction ?? ''}`,
    `         ${gprs}`,
    `         eflags=${hex(r.eflags)} cr0=${hex(r.cr0)} cr2=${hex(r.cr2)} cr3=${hex(r.cr3)} cr4=${hex(r.cr4)}`,
    `         ${exit}; TLB ${v.tlbEntries} entries, shadow ${v.shadowEntries}; timer ${v.lapic.deadline < 0 ? 'off' : `at tick ${v.lapic.deadline}`}${v.lapic.pending ? ' (pending)' : ''}`,
  ];
}

export function stateText(state: MachineState, seq: number): string {
  const v = stateView(state, seq);
  const names = domainNames(state);
  const name = (d: DomainId): string => (d < 0 ? '-' : names.get(d) ?? `d${d}`);
  const lines = [
    `seq ${v.seq}  tick ${v.tick}  profile ${v.profile}  flaws ${v.flaws.join(',') || 'none'}  ${v.halted ? 'halted' : v.booted ? 'running' : 'not booted'}  violations ${v.violations}`,
    `frames: ${v.frames.total} total, ${v.frames.owned} owned, ${v.frames.free} free, ${v.frames.holdingData} holding data`,
    'domains:',
    ...v.domains.flatMap((d) => [
      `  ${d.id} ${d.name.padEnd(8)} ${d.status.padEnd(7)} ${String(d.pages).padStart(4)}/${d.maxPages} pages  key ${d.key ?? '-'}  ` +
        (d.paging ? `x86 under ${d.paging}` : d.vcpus.map((c) => ('pc' in c ? `v${c.vcpu} pc ${c.pc}/${c.ops}` : '')).join('  ')),
      ...d.vcpus.flatMap(vcpuLines),
    ]),
    'pcpus:',
    ...v.pcpus.map((p) => `  p${p.pcpu} runs ${p.dom < 0 ? 'idle' : `${name(p.dom)}.v${p.vcpu}`}  quantum left ${p.quantumLeft}  SMM live key ${name(p.smmLive)}`),
    'page permission table (owner: frames):',
    ...v.pagePermissionTable.map((e) => `  ${name(e.owner)}: ${e.frames}`),
    'canaries:',
    ...(v.canaries.length ? v.canaries.map((c) => `  ${name(c.dom)} gpa 0x${c.gpa.toString(16)}: ${JSON.stringify(c.secret)}`) : ['  none']),
    `VT-d: ${v.io.vtd.enabled ? 'on' : 'off'}; ${v.io.vtd.contextCacheEntries} context-cache and ${v.io.vtd.iotlbEntries} IOTLB entries, ${v.io.vtd.remappedInterrupts} remapped interrupts, ${v.io.vtd.faultsPending} faults recorded`,
    'NIC VFs:',
    ...(v.io.vfs.length ? v.io.vfs.map((f) => `  vf${f.vf} ${f.device} ${name(f.dom)} mac ${f.mac} vlan ${f.vlan} spoofcheck ${f.spoofcheck ? 'on' : 'off'}`) : ['  none']),
    `I/O path: ${v.profile === 'secure' ? 'SIOM' : `dom0 netback (${v.io.netbackUp ? 'up' : 'down'})`}`,
  ];
  return lines.join('\n');
}

/**
 * Events [from, to) with what `log` shows beside them: each cpu.step's instruction,
 * disassembled from guest memory as it was when it ran (a private state is rolled forward
 * with the events), and the domain names known at that point. Reads the run once, chunk by
 * chunk, keeping none of them: memory stays flat over any length of run.
 */
export function* annotatedEvents(timeline: Timeline, from: Seq, to: Seq): Generator<AnnotatedEvent> {
  const state = timeline.mutableStateAt(Math.min(from, timeline.length));
  const names = domainNames(state);
  for (const [seq, event] of timeline.iterate(from, to, { cache: false })) {
    if (event.kind === 'domain.create') names.set(event.dom, event.name);
    const instruction = event.kind === 'cpu.step' ? disassembleAt(state, event.dom, event.vcpu, event.eip) : undefined;
    yield { seq, event, instruction, names };
    evolve(state, event, true);
  }
}

export interface AnnotatedEvent {
  seq: Seq;
  event: Event;
  /** A cpu.step's instruction as it was in memory. */
  instruction: string | undefined;
  names: DomainNames;
}

/** One event as `log --json` and `export jsonl` print it. */
export function eventLogJson({ seq, event, instruction }: AnnotatedEvent): Record<string, unknown> {
  return { ...eventJson(seq, event), ...(instruction ? { instruction } : {}) };
}
