/**
 * A fuzz case: a small machine (three scripted tenants and an x86 attacker, a VF each) and
 * the adversarial actions applied to it one after another. A case is a
 * scenario like any other: the actions are inputs, each applied when the machine has gone
 * quiet after the one before, so a recording of the case replays exactly.
 */
import fc from 'fast-check';
import yaml from 'js-yaml';
import type { Profile } from '../events/schema.ts';
import type { FlawName } from '../core/hypervisor/flaws.ts';
import { scenarioFromObject } from '../core/machine/scenario.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { ATTACKER, ATTACKER_NIC, TENANT_IPS, TENANT_MACS, TENANT_PAGES, TENANT_VLANS, TENANTS, actionInput, type Action } from './actions.ts';

/** Inputs wait for the machine to go quiet (nextStep applies a pending input then). */
export const WHEN_QUIET = Number.MAX_SAFE_INTEGER;

/** What varies between cases besides the actions. */
export interface CaseShape {
  seed: number;
  pcpus: number;
  quantum: number;
  /** How the x86 attacker's memory is virtualised (its code comes with the actions). */
  paging: 'ept' | 'shadow';
}

export const caseShapeArbitrary: fc.Arbitrary<CaseShape> = fc.record({
  // Few machine seeds: the machine's seed only names keys and canaries, and prepared machines are shared per shape.
  seed: fc.constantFrom(1, 2, 3),
  pcpus: fc.integer({ min: 1, max: 2 }),
  quantum: fc.integer({ min: 1, max: 4 }),
  paging: fc.constantFrom('ept' as const, 'shadow' as const),
});

/** The x86 attacker waits with interrupts off (cli; hlt) until an action gives it code to run. */
export const PARKED_X86 = 'faf4';

/** Every tenant sets its NIC up and plants a secret first, so leaks have something to find. */
const TENANT_START = ['nic_setup', { canary: { gpa: 0x1000, len: 24 } }];

export function caseDocument(shape: CaseShape, profile: Profile, flaws: readonly FlawName[], actions: readonly Action[]): Record<string, unknown> {
  const domains: Record<string, unknown>[] = TENANTS.map((name) => ({
    name,
    memoryKiB: TENANT_PAGES * 4,
    nic: { mac: TENANT_MACS[name], vlan: TENANT_VLANS[name], ip: TENANT_IPS[name] },
    guest: { ops: TENANT_START },
  }));
  // The attacker has a VF: its BAR window sits in its EPT (misconfigured: every access exits) or shadow tables.
  domains.push({ name: ATTACKER, memoryKiB: TENANT_PAGES * 4, paging: shape.paging, nic: ATTACKER_NIC, guest: { x86: { hex: PARKED_X86, load: 0x1000 } } });
  return {
    seed: shape.seed,
    machine: { memoryMiB: 2, pcpus: shape.pcpus, profile, quantum: shape.quantum, timeslice: 200 },
    flaws: [...flaws],
    dom0: { memoryKiB: 16 },
    domains,
    network: {
      vfs: 4,
      securityGroups: [
        { domain: 'alice', direction: 'ingress', protocol: 'any', remote: '10.0.0.0/24' },
        { domain: 'bob', direction: 'ingress', protocol: 'any', remote: '10.0.0.0/24' },
      ],
    },
    inputs: actions.map((a) => {
      const { key, value } = actionInput(a);
      return { at: WHEN_QUIET, set: { [key]: value } };
    }),
  };
}

export function caseConfig(shape: CaseShape, profile: Profile, flaws: readonly FlawName[], actions: readonly Action[]): MachineConfig {
  return scenarioFromObject(caseDocument(shape, profile, flaws, actions), 'fuzz-case.yaml');
}

/** The case as a scenario file: what a counterexample's recording keeps and `run` accepts. */
export function caseYaml(shape: CaseShape, profile: Profile, flaws: readonly FlawName[], actions: readonly Action[]): string {
  return `# A fuzz case (chronovisor fuzz). Run it again with: npx chronovisor run THIS_FILE\n${yaml.dump(caseDocument(shape, profile, flaws, actions), { noRefs: true, lineWidth: -1 })}`;
}
