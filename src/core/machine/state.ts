/**
 * The machine state: everything `decide` needs to take the next step, and nothing else.
 *
 * It is plain data (objects, arrays, Maps, byte arrays) so that the same `evolve` can mutate
 * it in place in the live machine and inside immer's `produce` in the timeline. Memory pages
 * and guest programs are immutable values replaced on change, so snapshots share them.
 */
import { NO_DOMAIN, type DomainId } from '../../events/schema.ts';
import { XEN_RESERVED_FRAMES, type MachineConfig } from '../hypervisor/config.ts';
import { initialIoState } from '../hypervisor/io/io-state.ts';
import { sharePage, type Host, type HostState } from '../hypervisor/state.ts';
import { seedPrng, type PrngState } from './prng.ts';

export interface Canary {
  dom: DomainId;
  gpa: number;
  secret: Uint8Array;
}

/** The machine: the host's state and what only the machine keeps. */
export interface MachineState extends HostState {
  booted: boolean;
  halted: boolean;
  prng: PrngState;
  /** Index of the next dom0 action in config.dom0Actions. */
  dom0Next: number;
  /** Index of the next scenario input in config.inputs. */
  inputNext: number;
  canaries: Canary[];
  violations: number;
}

export function initialState(config: MachineConfig): MachineState {
  return {
    config,
    profile: config.profile,
    quantum: config.quantum,
    flaws: [...config.flaws],
    booted: false,
    halted: false,
    tick: 0,
    prng: seedPrng(config.seed),
    nextDomainId: 0,
    freeStack: [],
    nextFresh: XEN_RESERVED_FRAMES,
    memory: new Map(),
    ppt: new Map(),
    m2p: new Map(),
    keyTable: new Map(),
    domains: new Map(),
    sched: {
      turn: 0,
      pcpus: Array.from({ length: config.pcpus }, () => ({ dom: NO_DOMAIN, vcpu: 0, quantumLeft: 0 })),
      smmLive: Array.from({ length: config.pcpus }, () => NO_DOMAIN),
      cursor: -1,
    },
    dom0Next: 0,
    inputNext: 0,
    canaries: [],
    violations: 0,
    io: initialIoState(config),
  };
}

/**
 * A working copy of a state that shares what is never changed in place: byte arrays (keys
 * and PCI configuration spaces are replaced on change, never written into; pages are shared
 * first, so that neither state writes them in place), the entries of the frame tables
 * (memory, page permission table, m2p: evolve replaces an entry, never edits one) and the
 * scenario. Everything else is copied, so the two states go their own
 * ways. For running many machines from one prepared state (the fuzzer) without building it
 * again each time.
 */
export function cloneState(state: MachineState): MachineState {
  const { config, memory, ppt, m2p, ...rest } = state;
  for (const page of memory.values()) sharePage(page.bytes);
  return { ...(cloneValue(rest) as Omit<MachineState, 'config' | 'memory' | 'ppt' | 'm2p'>), config, memory: new Map(memory), ppt: new Map(ppt), m2p: new Map(m2p) };
}

function cloneValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (value instanceof Map) {
    const copy = new Map();
    for (const [k, v] of value) copy.set(k, cloneValue(v));
    return copy;
  }
  if (Array.isArray(value)) return value.map(cloneValue);
  const copy: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) copy[key] = cloneValue(v);
  return copy;
}

/** The machine as its own parts (guests, inputs, the wire) work with it: the host, with the machine's state. */
export interface MachineHost extends Host {
  readonly state: MachineState;
}
