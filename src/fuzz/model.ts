/**
 * The fuzzer's model: tiny on purpose (who is alive, which incarnations are dead), never a
 * second copy of the simulator. After every action the machine must agree with it: a dead
 * domain keeps nothing (frames, key, VF, IOMMU domain, cached translations, context entries).
 */
import fc from 'fast-check';
import { NO_DOMAIN } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import { ATTACKER, TENANTS, actionText, type Action, type Tenant } from './actions.ts';
import type { FuzzMachine } from './fuzz-machine.ts';

export interface Model {
  alive: Set<Tenant | typeof ATTACKER>;
  /** Ids of every incarnation of a tenant that has died. */
  dead: Set<number>;
}

export function initialModel(): Model {
  return { alive: new Set([...TENANTS, ATTACKER]), dead: new Set() };
}

/** A finding: an invariant the machine recorded, or a disagreement with the model. */
export class Finding extends Error {}

/** What a dead domain still holds in the machine, if anything. */
export function leftovers(state: MachineState, dom: number): string | undefined {
  for (const [mfn, entry] of state.ppt) if (entry.owner === dom) return `still owns frame ${mfn}`;
  if (state.keyTable.has(dom)) return 'still has an SMM key';
  const vf = state.io.vfs.find((v) => v.dom === dom);
  if (vf) return `still has VF ${vf.vf}`;
  if (state.io.xenVtd.domains.has(dom)) return 'still has an IOMMU domain';
  const did = dom + 1;
  for (const e of state.io.vtd.contextCache.values()) if (e.did === did) return `still has a context-cache entry (source ${e.sid.toString(16)}, DID ${did})`;
  for (const e of state.io.vtd.iotlb.values()) if (e.did === did) return `still has an IOTLB entry (gfn ${e.gfn}, DID ${did})`;
  for (const [index, irte] of state.io.xenVtd.irtes) if (irte.dom === dom) return `still has interrupt remapping entry ${index}`;
  return undefined;
}

/** Marks the model's tenants that the machine shows dead, and checks every dead incarnation. */
function reconcile(model: Model, state: MachineState): void {
  for (const d of state.domains.values()) {
    const tenant = [...TENANTS, ATTACKER].includes(d.name) ? (d.name as Tenant | typeof ATTACKER) : undefined;
    if (d.status === 'dead' && d.id !== NO_DOMAIN) {
      model.dead.add(d.id);
      if (tenant && ![...state.domains.values()].some((o) => o.name === d.name && o.status === 'running')) model.alive.delete(tenant);
    } else if (tenant && d.status === 'running') {
      model.alive.add(tenant);
    }
  }
  for (const dom of model.dead) {
    const left = leftovers(state, dom);
    if (left !== undefined) throw new Finding(`dead domain ${dom} ${left}`);
  }
}

/** One adversarial action as a fast-check command. */
export class ActionCommand implements fc.Command<Model, FuzzMachine> {
  constructor(readonly action: Action) {}

  check(model: Readonly<Model>): boolean {
    const a = this.action;
    if (a.kind === 'guest') return model.alive.has(a.domain);
    if (a.kind === 'x86') return model.alive.has(ATTACKER);
    if (a.kind === 'dom0' && a.op === 'create_domain') return !model.alive.has(a.domain as Tenant);
    return true;
  }

  run(model: Model, real: FuzzMachine): void {
    if (real.exhausted) return;
    const violations = real.apply(this.action);
    if (violations.length > 0) {
      const v = violations[0];
      throw new Finding(`${v.invariant}: ${v.detail}${violations.length > 1 ? ` (and ${violations.length - 1} more)` : ''}`);
    }
    reconcile(model, real.state);
  }

  toString(): string {
    return actionText(this.action);
  }
}
