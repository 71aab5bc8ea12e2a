/**
 * What a case reached, as named features: the feedback of the guided mode and the rows of
 * the coverage table. A feature is a string `family:detail`:
 *
 * - `exit:REASON:QUAL`   a VM exit with its qualification reduced to what tells cases apart
 *                        (the CR and access type, the port and direction, the EPT access bits);
 * - `fault:0xNN`         a VT-d fault reason (DMA remapping 0x1-0xD, interrupt remapping 0x20-0x26);
 * - `hypercall:OP:RESULT` a hypercall and its result (0 or an errno);
 * - `dom0:OP:RESULT`     a dom0 action and its result;
 * - `net:AT:VERDICT`     a frame's verdict at a point of the path;
 * - `reg:NAME`           a NIC register the device or its driver wrote;
 * - `pair:KIND>KIND`     two event kinds one after the other;
 * - `near:MEASURE:BUCKET` how close an invariant came to breaking (below);
 * - `violation:INVARIANT` an invariant broken.
 *
 * Distances from breaking, measured where they are cheap and meaningful:
 * - `near:dma-foreign`: a DMA that reached memory, the number of frames from its target to
 *   the nearest frame another guest owns (1: one frame away from a foreign one);
 * - `near:map-foreign`: the same for a frame newly mapped into a guest (p2m.update).
 * Buckets are 1, 2, 3-4, 5-8 and far: a campaign that reached 2 but never 1 stayed away.
 */
import type { Event } from '../events/schema.ts';
import { EVENT_KINDS } from '../events/schema.ts';
import { ExitReason } from '../core/hardware/vmx/exit-reasons.ts';
import type { MachineState } from '../core/machine/state.ts';

const KIND_INDEX = new Map<string, number>(EVENT_KINDS.map((k, i) => [k, i]));
const KIND_COUNT = EVENT_KINDS.length;

/** Frames looked at on each side for a distance; beyond that the target is `far`. */
const NEAR_FRAMES_MAX = 8;
export const NEAR_BUCKETS = ['1', '2', '3-4', '5-8', 'far'] as const;
export const NEAR_MEASURES = ['dma-foreign', 'map-foreign'] as const;

function nearBucket(distance: number): string {
  if (distance <= 2) return String(distance);
  if (distance <= 4) return '3-4';
  return distance <= NEAR_FRAMES_MAX ? '5-8' : 'far';
}

/** Frames from `mfn` to the nearest frame owned by a guest other than `dom` (NEAR_FRAMES_MAX + 1: none near). */
export function foreignFrameDistance(state: MachineState, mfn: number, dom: number): number {
  for (let d = 1; d <= NEAR_FRAMES_MAX; d++) {
    for (const other of [mfn - d, mfn + d]) {
      const owner = state.ppt.get(other)?.owner;
      // Xen's and dom0's frames are not a guest's secret: only another guest's frame counts.
      if (owner !== undefined && owner !== dom && owner > 0) return d;
    }
  }
  return NEAR_FRAMES_MAX + 1;
}

/** The part of an exit qualification that tells cases apart (SDM Vol. 3, tables 28-1 to 28-7). */
function qualificationClass(reason: number, qualification: number): string {
  switch (reason) {
    case ExitReason.CR_ACCESS: return `cr${qualification & 0xf}-type${(qualification >> 4) & 0x3}`;
    case ExitReason.IO_INSTRUCTION: return `port${(qualification >>> 16).toString(16)}-${qualification & 0x8 ? 'in' : 'out'}${(qualification & 0x7) + 1}`;
    case ExitReason.EPT_VIOLATION: return `rwx${qualification & 0x7}-present${(qualification >> 3) & 0x7}`;
    default: return '-';
  }
}

/** The features one case reached. Fed every event of the case; cheap for the common ones. */
export class CaseFeatures {
  /** Event-kind pairs as numbers (previous * KIND_COUNT + current): a cpu.step costs a Set add. */
  private readonly pairs = new Set<number>();
  private readonly named = new Set<string>();
  private previous = -1;

  add(event: Event, state: MachineState): void {
    const index = KIND_INDEX.get(event.kind)!;
    if (this.previous >= 0) this.pairs.add(this.previous * KIND_COUNT + index);
    this.previous = index;
    switch (event.kind) {
      case 'vm.exit': this.named.add(`exit:${event.reason}:${qualificationClass(event.reason, event.qualification)}`); break;
      case 'dma.request':
        if (event.fault !== 0) this.named.add(`fault:0x${event.fault.toString(16)}`);
        else if (event.hpa >= 0 && event.dom > 0) this.near('dma-foreign', foreignFrameDistance(state, Math.floor(event.hpa / 4096), event.dom));
        break;
      case 'msi': if (event.fault !== 0) this.named.add(`fault:0x${event.fault.toString(16)}`); break;
      case 'hypercall': this.named.add(`hypercall:${event.op}:${event.result}`); break;
      case 'dom0.op': this.named.add(`dom0:${event.op}:${event.result}`); break;
      case 'net.frame': this.named.add(`net:${event.at}:${event.verdict}`); break;
      case 'nic.reg': this.named.add(`reg:${event.reg}`); break;
      case 'p2m.update': if (event.mfn >= 0 && event.dom > 0) this.near('map-foreign', foreignFrameDistance(state, event.mfn, event.dom)); break;
      case 'violation': this.named.add(`violation:${event.invariant}`); break;
      default: break;
    }
  }

  private near(measure: (typeof NEAR_MEASURES)[number], distance: number): void {
    this.named.add(`near:${measure}:${nearBucket(distance)}`);
  }

  /** Every feature, named. */
  list(): string[] {
    const out = [...this.named];
    for (const p of this.pairs) out.push(`pair:${EVENT_KINDS[Math.floor(p / KIND_COUNT)]}>${EVENT_KINDS[p % KIND_COUNT]}`);
    return out;
  }
}

/** Features over a campaign: how many cases reached each. */
export class FeatureCounts {
  readonly counts = new Map<string, number>();

  /** Adds one case's features; returns those no case had reached before. */
  addCase(features: readonly string[]): string[] {
    const fresh: string[] = [];
    for (const f of features) {
      const n = this.counts.get(f) ?? 0;
      if (n === 0) fresh.push(f);
      this.counts.set(f, n + 1);
    }
    return fresh;
  }

  merge(other: Iterable<[string, number]>): void {
    for (const [f, n] of other) this.counts.set(f, (this.counts.get(f) ?? 0) + n);
  }

  has(feature: string): boolean {
    return this.counts.has(feature);
  }
}
