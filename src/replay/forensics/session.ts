/**
 * What every forensic query of one run works with: the timeline, the index, the steps as
 * they are re-walked, the domains' names, and addresses resolved at a seq. Queries are
 * deterministic functions of the recording; the CLI and the TUI format their results.
 */
import { InputError } from '../../events/errors.ts';
import type { DomainId, Event, Seq } from '../../events/schema.ts';
import type { RecordingStore, RunRow } from '../../events/store.ts';
import { formatInstruction } from '../../core/hardware/x86/index.ts';
import { pciBdfFormat } from '../../core/hardware/pci/index.ts';
import { Timeline } from '../timeline.ts';
import { domainNames } from '../format.ts';
import { bytesText } from '../../events/event-text.ts';
import { ForensicIndex } from './index-query.ts';
import { StepReader } from './step-reader.ts';
import { parseAddress, resolveAddress, type Resolved } from './address.ts';
import type { ReplayedStep } from './cpu-replay.ts';
import type { StepRecord } from './steps.ts';

export class ForensicSession {
  readonly timeline: Timeline;
  readonly index: ForensicIndex;
  readonly steps: StepReader;
  private names: Map<DomainId, string> | undefined;

  constructor(store: RecordingStore, run: RunRow) {
    this.timeline = new Timeline(store, run);
    this.index = new ForensicIndex(store, run);
    this.steps = new StepReader(this.timeline);
  }

  get length(): Seq {
    return this.timeline.length;
  }

  /** Domain names of the whole run (a later domain of the same name wins). */
  get domainNames(): ReadonlyMap<DomainId, string> {
    if (this.names === undefined) {
      this.names = domainNames(this.timeline.stateAt(this.timeline.length));
      for (const [, event] of this.timeline.iterate(0, Math.min(this.timeline.length, 4096))) {
        if (event.kind === 'domain.create' && !this.names.has(event.dom)) this.names.set(event.dom, event.name);
      }
    }
    return this.names;
  }

  domain(dom: DomainId): string {
    return dom < 0 ? '-' : this.domainNames.get(dom) ?? `d${dom}`;
  }

  /** Checks a seq argument: 0..length (a position). */
  position(seq: Seq, option: string): Seq {
    if (seq > this.length) throw new InputError('argument', `${option} ${seq}: run ${this.timeline.run.id} has ${this.length} events; give 0..${this.length}`);
    return seq;
  }

  /** Parses and resolves an address at position `at` (the state after events 0..at-1). */
  resolve(text: string, at: Seq, argument = 'ADDR'): Resolved {
    const address = parseAddress(text, argument);
    return resolveAddress(address, this.timeline.stateAt(this.position(at, '--at')), at, argument);
  }

  event(seq: Seq): Event {
    return this.timeline.event(seq);
  }

  step(seq: Seq): StepRecord {
    return this.steps.stepAt(seq);
  }

  /** The step that holds `seq`, for describing it alone (see StepReader.stepAlone). */
  stepAlone(seq: Seq): StepRecord {
    return this.steps.stepAlone(seq);
  }

  /** A short name of an event's bytes: `net.frame switch@70465`. */
  eventName(seq: Seq): string {
    const e = this.event(seq);
    switch (e.kind) {
      case 'net.frame': return `frame at ${e.at}@${seq}`;
      case 'dma.request': return `DMA ${e.write ? 'write' : 'read'} by ${pciBdfFormat(e.sid)}@${seq}`;
      case 'netback.copy': return `netback copy ${e.dir} (${this.domain(e.dom)})@${seq}`;
      default: return `${e.kind}@${seq}`;
    }
  }

  /** Who ran an x86 step and what: `alice.v0`, `mov [edi+0xc], ax`. */
  x86Text(replay: ReplayedStep): { actor: string; what: string } {
    const actor = `${this.domain(replay.dom)}.v${replay.vcpu}`;
    if (replay.instruction !== undefined && replay.outcome === 'retired') return { actor, what: formatInstruction(replay.instruction, replay.before.eip) };
    if (replay.delivered !== undefined) return { actor, what: `delivers vector 0x${replay.delivered.toString(16)} (IDT)` };
    if (replay.instruction !== undefined) return { actor, what: `${formatInstruction(replay.instruction, replay.before.eip)} (${replay.outcome === 'exit' ? 'exits' : 'faults'})` };
    return { actor, what: 'VM entry' };
  }

  bytes(data: Uint8Array | undefined): string | undefined {
    return data === undefined ? undefined : bytesText(data);
  }
}
