/**
 * A run as a trace for the Perfetto UI (and chrome://tracing), in the Trace Event Format's
 * JSON form: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
 *
 * The trace's clock is the seq: event N happens at N microseconds, so every event has a
 * place of its own and a slice covers the events inside it (the machine's tick is in the
 * args). What it shows:
 * - process "pCPUs": a track per pCPU with a slice per stretch a domain's vCPU runs on it;
 * - process "vCPUs": a track per vCPU with a slice per VM exit (its reason, from the exit to
 *   the next VM entry), exceptions as instants, and the interrupts it receives;
 * - process "devices": a track per PCI function (its routing id) with a slice per DMA request
 *   and per interrupt request; a flow goes from each DMA that reached memory to the host
 *   frame's track (process "memory"), and from each delivered interrupt to its vCPU;
 * - violations as global instants; counters of IOTLB and TLB entries.
 * Events are yielded as the run is read once (slices when they end), which the format allows.
 */
import { NO_DOMAIN, type Event, type Seq } from '../events/schema.ts';
import { pciBdfFormat } from '../core/hardware/pci/index.ts';
import { exitReasonName } from '../core/hardware/vmx/exit-reasons.ts';
import { evolve } from '../core/machine/evolve.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { Timeline } from './timeline.ts';

export interface TraceEvent {
  name: string;
  /** Phase: X complete slice, i instant, C counter, s/f flow start/end, M metadata. */
  ph: 'X' | 'i' | 'C' | 's' | 'f' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  id?: number;
  /** Instant scope: g global, p process, t thread. */
  s?: 'g' | 'p' | 't';
  /** Flow binding point: e, the enclosing slice. */
  bp?: 'e';
  args?: Record<string, unknown>;
}

export const PID = { pcpus: 1, vcpus: 2, devices: 3, memory: 4 } as const;
const PROCESS_NAMES: Record<number, string> = { 1: 'pCPUs', 2: 'vCPUs', 3: 'devices', 4: 'memory' };
const PAGE_SHIFT = 12;
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
/** pCPU N is thread N+1 of the pCPUs process (thread 0 carries its counters and the violations). */
export const pcpuTid = (pcpu: number): number => pcpu + 1;

interface OpenSlice {
  name: string;
  start: Seq;
  args: Record<string, unknown>;
}

/** The trace of a run, event by event (one read of the run; memory stays flat). */
export class TraceBuilder {
  private readonly state: MachineState;
  private readonly running = new Map<number, OpenSlice>();
  private readonly exits = new Map<number, OpenSlice>();
  private readonly named = new Set<string>();
  private readonly vcpuTids = new Map<string, number>();
  private flows = 0;
  private counters = { iotlb: -1, tlb: -1 };

  constructor(private readonly timeline: Timeline) {
    this.state = timeline.mutableStateAt(0);
  }

  *events(): Generator<TraceEvent> {
    for (const pid of Object.values(PID)) yield { name: 'process_name', ph: 'M', pid, tid: 0, args: { name: PROCESS_NAMES[pid] } };
    for (const [seq, event] of this.timeline.iterate(0, this.timeline.length, { cache: false })) {
      yield* this.event(seq, event);
      evolve(this.state, event, true);
      yield* this.counterChanges(seq);
    }
    const end = this.timeline.length;
    for (const [tid, slice] of this.running) yield this.slice(PID.pcpus, tid, slice, end);
    for (const [tid, slice] of this.exits) yield this.slice(PID.vcpus, tid, slice, end);
  }

  private *event(seq: Seq, event: Event): Generator<TraceEvent> {
    switch (event.kind) {
      case 'sched.switch': {
        const tid = pcpuTid(event.pcpu);
        const open = this.running.get(tid);
        if (open) yield this.slice(PID.pcpus, tid, open, seq);
        this.running.delete(tid);
        yield* this.thread(PID.pcpus, tid, `pCPU ${event.pcpu}`);
        if (event.toDom !== NO_DOMAIN) {
          this.running.set(tid, { name: this.vcpuName(event.toDom, event.toVcpu), start: seq, args: { tick: this.state.tick, smmLive: this.domName(event.smmLive) } });
        }
        return;
      }
      case 'vm.exit': {
        const tid = yield* this.vcpuTrack(event.dom, event.vcpu);
        const reason = `${exitReasonName(event.reason)}(${event.reason})`;
        this.exits.set(tid, {
          name: `VM exit ${reason}`, start: seq,
          args: { tick: this.state.tick, reason, qualification: hex(event.qualification), gla: event.gla < 0 ? null : hex(event.gla), gpa: event.gpa < 0 ? null : hex(event.gpa), pcpu: event.pcpu },
        });
        return;
      }
      case 'vm.entry': {
        const tid = yield* this.vcpuTrack(event.dom, event.vcpu);
        const open = this.exits.get(tid);
        if (open) yield this.slice(PID.vcpus, tid, open, seq);
        this.exits.delete(tid);
        return;
      }
      case 'exception': {
        const tid = yield* this.vcpuTrack(event.dom, event.vcpu);
        yield { name: `exception ${event.vector}`, ph: 'i', s: 't', pid: PID.vcpus, tid, ts: seq, args: { vector: event.vector, errorCode: event.errorCode, cr2: hex(event.cr2) } };
        return;
      }
      case 'dma.request': return yield* this.dma(seq, event);
      case 'msi': return yield* this.msi(seq, event);
      case 'violation':
        yield { name: `violation ${event.invariant}`, ph: 'i', s: 'g', pid: PID.pcpus, tid: 0, ts: seq, cat: 'violation', args: { invariant: event.invariant, detail: event.detail, dom: this.domName(event.dom), mfn: event.mfn } };
        return;
      default:
    }
  }

  /** A DMA request: a slice on the device's track, and a flow to the frame it reached. */
  private *dma(seq: Seq, e: Extract<Event, { kind: 'dma.request' }>): Generator<TraceEvent> {
    yield* this.thread(PID.devices, e.sid, `device ${pciBdfFormat(e.sid)}`);
    const name = `DMA ${e.write ? 'write' : 'read'} ${hex(e.iova)}`;
    const args = { tick: this.state.tick, iova: hex(e.iova), len: e.len, hpa: e.hpa < 0 ? null : hex(e.hpa), fault: e.fault, dom: this.domName(e.dom) };
    yield { name, ph: 'X', pid: PID.devices, tid: e.sid, ts: seq, dur: 1, cat: 'dma', args };
    if (e.hpa < 0) return;
    const mfn = Math.floor(e.hpa / 2 ** PAGE_SHIFT);
    yield* this.thread(PID.memory, mfn, `mfn ${mfn}`);
    yield* this.flow('dma', { pid: PID.devices, tid: e.sid }, { pid: PID.memory, tid: mfn }, seq);
    yield { name: `${name} from ${pciBdfFormat(e.sid)}`, ph: 'X', pid: PID.memory, tid: mfn, ts: seq, dur: 1, cat: 'dma', args };
  }

  /** An interrupt request: a slice on the device's track, and a flow to the vCPU it reached. */
  private *msi(seq: Seq, e: Extract<Event, { kind: 'msi' }>): Generator<TraceEvent> {
    yield* this.thread(PID.devices, e.sid, `device ${pciBdfFormat(e.sid)}`);
    const delivered = e.fault === 0 && e.dom !== NO_DOMAIN;
    const name = delivered ? `MSI vector ${e.vector}` : `MSI blocked (fault ${hex(e.fault)})`;
    const args = { tick: this.state.tick, address: hex(e.address), data: hex(e.data), index: e.index, fault: e.fault, dom: this.domName(e.dom), vcpu: e.vcpu, vector: e.vector };
    yield { name, ph: 'X', pid: PID.devices, tid: e.sid, ts: seq, dur: 1, cat: 'msi', args };
    if (!delivered) return;
    const tid = yield* this.vcpuTrack(e.dom, e.vcpu);
    yield* this.flow('msi', { pid: PID.devices, tid: e.sid }, { pid: PID.vcpus, tid }, seq);
    yield { name: `interrupt vector ${e.vector} from ${pciBdfFormat(e.sid)}`, ph: 'X', pid: PID.vcpus, tid, ts: seq, dur: 1, cat: 'msi', args };
  }

  private *flow(cat: string, from: { pid: number; tid: number }, to: { pid: number; tid: number }, seq: Seq): Generator<TraceEvent> {
    const id = ++this.flows;
    yield { name: cat, cat, ph: 's', id, ...from, ts: seq };
    yield { name: cat, cat, ph: 'f', bp: 'e', id, ...to, ts: seq };
  }

  /** Counters, emitted when they change: IOTLB entries, and TLB entries of all vCPUs. */
  private *counterChanges(seq: Seq): Generator<TraceEvent> {
    const iotlb = this.state.io.vtd.iotlb.size;
    let tlb = 0;
    for (const domain of this.state.domains.values()) for (const vcpu of domain.vcpus) tlb += vcpu.x86?.tlb.size ?? 0;
    if (iotlb !== this.counters.iotlb) yield { name: 'IOTLB entries', ph: 'C', pid: PID.pcpus, tid: 0, ts: seq + 1, args: { entries: iotlb } };
    if (tlb !== this.counters.tlb) yield { name: 'TLB entries', ph: 'C', pid: PID.pcpus, tid: 0, ts: seq + 1, args: { entries: tlb } };
    this.counters = { iotlb, tlb };
  }

  private slice(pid: number, tid: number, open: OpenSlice, end: Seq): TraceEvent {
    return { name: open.name, ph: 'X', pid, tid, ts: open.start, dur: Math.max(1, end - open.start), args: open.args };
  }

  /** The track of a vCPU (its thread id is given in order of first use), named once. */
  private *vcpuTrack(dom: number, vcpu: number): Generator<TraceEvent, number> {
    const key = `${dom}.${vcpu}`;
    let tid = this.vcpuTids.get(key);
    if (tid === undefined) this.vcpuTids.set(key, tid = this.vcpuTids.size + 1);
    yield* this.thread(PID.vcpus, tid, this.vcpuName(dom, vcpu));
    return tid;
  }

  /** A thread_name record the first time a track is used. */
  private *thread(pid: number, tid: number, name: string): Generator<TraceEvent> {
    const key = `${pid}:${tid}`;
    if (this.named.has(key)) return;
    this.named.add(key);
    yield { name: 'thread_name', ph: 'M', pid, tid, args: { name } };
  }

  private domName(dom: number): string | null {
    return dom === NO_DOMAIN ? null : this.state.domains.get(dom)?.name ?? `d${dom}`;
  }

  private vcpuName(dom: number, vcpu: number): string {
    return `${this.domName(dom)}.v${vcpu}`;
  }
}
