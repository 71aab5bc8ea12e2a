/**
 * What an event points at, so the panes can follow the selected event: its domain (machine
 * pane), the guest frame and bytes it touched (memory pane) and its host frame (SMM pane).
 */
import { eventDomains, eventFrame, type DomainId, type Event, type Mfn } from '../events/schema.ts';
import { PAGE_SIZE } from '../core/hypervisor/config.ts';
import type { MachineState } from '../core/machine/state.ts';

export interface GuestBytes {
  dom: DomainId;
  gfn: number;
  offset: number;
  length: number;
}

/** The domain an event is mostly about: the acting domain, or the one switched to. */
export function eventDomain(event: Event): DomainId | undefined {
  if (event.kind === 'sched.switch') return event.toDom >= 0 ? event.toDom : undefined;
  const doms = eventDomains(event).filter((d) => d > 0);
  return doms.length ? doms[doms.length - 1] : eventDomains(event)[0];
}

const at = (dom: DomainId, gpa: number, length: number): GuestBytes =>
  ({ dom, gfn: Math.floor(gpa / PAGE_SIZE), offset: gpa % PAGE_SIZE, length });

/** The guest bytes an event read or wrote, or the guest frame it changed. */
export function eventGuestBytes(event: Event, state: MachineState): GuestBytes | undefined {
  switch (event.kind) {
    case 'mem.write': return at(event.dom, event.gpa, event.stored.length);
    case 'mem.read': return at(event.dom, event.gpa, event.stored.length);
    case 'guest.canary': return at(event.dom, event.gpa, event.secret.length);
    case 'mem.fault': return event.gpa >= 0 ? at(event.dom, event.gpa, 1) : undefined;
    case 'dom0.foreign_read': return { dom: event.target, gfn: event.gfn, offset: event.offset, length: event.value.length };
    case 'p2m.update': return { dom: event.dom, gfn: event.gfn, offset: 0, length: 0 };
    default: break;
  }
  const mfn = eventFrame(event);
  const owner = mfn >= 0 ? state.m2p.get(mfn) : undefined;
  return owner ? { dom: owner.dom, gfn: owner.gfn, offset: 0, length: 0 } : undefined;
}

/** The host frame an event concerns, if any. */
export function eventHostFrame(event: Event): Mfn | undefined {
  const mfn = eventFrame(event);
  return mfn >= 0 ? mfn : undefined;
}
