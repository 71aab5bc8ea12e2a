/**
 * Checkpoint encoding of the machine state, canonical and content-addressed.
 *
 * Large immutable values (memory pages, guest programs, the scenario) are stored as blobs
 * named by their sha256 and referenced by hash, so a checkpoint is small and unchanged pages
 * are shared by every checkpoint of every run. Maps are written as entry lists sorted by key,
 * so equal states encode to equal bytes: the digest of a state is the hash of its encoding.
 */
import { Packr } from 'msgpackr';
import { createHash } from 'node:crypto';
import { assert } from '../../events/errors.ts';
import { eptSet, type EptTable } from '../hardware/paging/ept.ts';
import type { GuestOp, MachineConfig } from '../hypervisor/config.ts';
import type { IoState } from '../hypervisor/io/io-state.ts';
import { sharePage, type Domain, type Page, type Vcpu, type X86Vcpu } from '../hypervisor/state.ts';
import type { DomainId } from '../../events/schema.ts';
import type { PrngState } from './prng.ts';
import type { MachineState } from './state.ts';

export const SNAPSHOT_VERSION = 1;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export type Blob = [hash: Uint8Array, bytes: Uint8Array];

const hashCache = new WeakMap<object, Buffer>();

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/**
 * The blobs the last checkpoint of a recording referred to: what the next one need not store
 * again. It holds about a state's worth of hashes, not every blob of the recording: a
 * blob forgotten and met again is handed over again, and the store ignores the duplicate.
 */
export class KnownBlobs {
  private previous = new Set<string>();
  private current = new Set<string>();

  /** Notes that the checkpoint being written refers to `id`; true when it must be stored. */
  refer(id: string): boolean {
    if (this.current.has(id)) return false;
    this.current.add(id);
    return !this.previous.has(id);
  }

  /** The state is encoded: what it referred to is what the next one may skip. */
  checkpointDone(): void {
    this.previous = this.current;
    this.current = new Set();
  }
}

/** Collects the blobs a checkpoint refers to, hashing each immutable value once. */
class BlobWriter {
  readonly blobs: Blob[] = [];
  /** @param known blobs already stored; undefined to collect nothing (for digests) */
  constructor(private readonly known: KnownBlobs | undefined) {}

  ref(value: object, encode: () => Uint8Array): Buffer {
    let hash = hashCache.get(value);
    let bytes: Uint8Array | undefined;
    if (hash === undefined) {
      bytes = encode();
      hash = sha256(bytes);
      hashCache.set(value, hash);
    }
    if (this.known?.refer(hash.toString('hex'))) this.blobs.push([hash, bytes ?? encode()]);
    return hash;
  }
}

const sortedEntries = <K extends number, V>(map: Map<K, V>): [K, V][] => [...map.entries()].sort((a, b) => a[0] - b[0]);

/**
 * Encodes a state. `known` holds the blobs the last checkpoints stored (it is updated), so
 * only the others are returned.
 */
export function dehydrate(state: MachineState, known: KnownBlobs | undefined = new KnownBlobs()): { bytes: Uint8Array; blobs: Blob[] } {
  const blobs = new BlobWriter(known);
  const program = (p: GuestOp[]): Buffer => blobs.ref(p, () => packr.pack(p));
  // The blob is the page itself, and its hash is cached by identity: never written in place again.
  const page = (p: Page): Buffer => {
    sharePage(p.bytes);
    return blobs.ref(p.bytes, () => p.bytes);
  };
  const plain = {
    v: SNAPSHOT_VERSION,
    config: blobs.ref(state.config, () => packr.pack(state.config)),
    profile: state.profile,
    quantum: state.quantum,
    flaws: state.flaws,
    booted: state.booted,
    halted: state.halted,
    tick: state.tick,
    prng: state.prng,
    nextDomainId: state.nextDomainId,
    freeStack: state.freeStack,
    nextFresh: state.nextFresh,
    memory: sortedEntries(state.memory).map(([mfn, p]) => [mfn, page(p), p.writer]),
    ppt: sortedEntries(state.ppt).map(([mfn, e]) => [mfn, e.owner, e.rights]),
    m2p: sortedEntries(state.m2p).map(([mfn, e]) => [mfn, e.dom, e.gfn]),
    keyTable: sortedEntries(state.keyTable),
    domains: sortedEntries(state.domains).map(([, d]) => ({
      id: d.id, name: d.name, status: d.status, memoryKiB: d.memoryKiB, maxPages: d.maxPages,
      p2m: sortedEntries(d.p2m), vcpus: d.vcpus.map((v) => [v.pc, v.loops, v.x86 && plainX86(v.x86)]), programs: d.programs.map(program),
      kind: d.kind, paging: d.paging, ept: eptEntries(d.ept),
    })),
    sched: state.sched,
    dom0Next: state.dom0Next,
    inputNext: state.inputNext,
    canaries: state.canaries.map((c) => [c.dom, c.gpa, c.secret]),
    violations: state.violations,
    io: plainValue(state.io, blobs),
  };
  known?.checkpointDone();
  return { bytes: packr.pack(plain), blobs: blobs.blobs };
}

/** The EPT's leaves as [gfn, mfn, bits], in gfn order. */
function eptEntries(table: EptTable): number[][] {
  const out: number[][] = [];
  for (const [a, pdpt] of table) for (const [b, pd] of pdpt) for (const [c, pt] of pd) for (const [d, e] of pt) {
    out.push([((a * 512 + b) * 512 + c) * 512 + d, e.mfn, e.bits]);
  }
  return out.sort((x, y) => x[0] - y[0]);
}

/** An x86 vCPU as plain data; the TLB keeps its order (the oldest entry is evicted first). */
function plainX86(x: X86Vcpu) {
  return {
    cpu: x.cpu, vpid: x.vpid, exit: x.exit, inGuest: x.inGuest, halted: x.halted, injection: x.injection,
    tlb: [...x.tlb.entries()].map(([page, e]) => [page, e.mfn, e.flags]),
    shadow: sortedEntries(x.shadow).map(([page, e]) => [page, e.mfn, e.flags]),
    lapic: x.lapic, irr: x.irr,
    // Only under shadow paging, and only once a CR3 load kept one: other states stay as they were.
    ...(x.shadowCache.size === 0 ? {} : { shadowCache: [...x.shadowCache].map(([cr3, shadow]) => [cr3, sortedEntries(shadow).map(([page, e]) => [page, e.mfn, e.flags])]) }),
  };
}

/** Byte arrays this large are stored as blobs (PCI configuration spaces: 4 KiB each, mostly unchanged). */
const BLOB_MIN_BYTES = 256;

/**
 * The I/O state as plain data: Maps become tagged entry lists in insertion order (the
 * IOTLB's and the context cache's order is their eviction order), large byte arrays blobs.
 */
function plainValue(value: unknown, blobs: BlobWriter): unknown {
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [k, plainValue(v, blobs)]) };
  if (value instanceof Uint8Array) return value.length >= BLOB_MIN_BYTES ? { $blob: blobs.ref(value, () => value) } : value;
  if (Array.isArray(value)) return value.map((v) => plainValue(v, blobs));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainValue(v, blobs)]));
  }
  return value;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the layout is plainValue's
function hydrateValue(value: any, blobs: BlobCache): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map((v) => hydrateValue(v, blobs));
  if (value !== null && typeof value === 'object') {
    if ('$map' in value) return new Map(value.$map.map(([k, v]: [unknown, unknown]) => [k, hydrateValue(v, blobs)]));
    if ('$blob' in value) return blobs.get(value.$blob, (b) => new Uint8Array(b));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hydrateValue(v, blobs)]));
  }
  return value;
}

function hydrateX86(p: any): X86Vcpu {
  const entries = (list: number[][]) => new Map(list.map(([page, mfn, flags]) => [page, { mfn, flags }]));
  return {
    cpu: { ...p.cpu, gpr: [...p.cpu.gpr] }, vpid: p.vpid, exit: p.exit, inGuest: p.inGuest, halted: p.halted, injection: p.injection,
    tlb: entries(p.tlb), shadow: entries(p.shadow), lapic: p.lapic, irr: [...p.irr],
    shadowCache: new Map((p.shadowCache ?? []).map(([cr3, list]: [number, number[][]]) => [cr3, entries(list)])),
  };
}

function hydrateEpt(entries: number[][]): EptTable {
  const table: EptTable = new Map();
  for (const [gfn, mfn, bits] of entries) eptSet(table, gfn, { mfn, bits });
  return table;
}

/** Decoded blobs, kept so that states loaded from several checkpoints share them. */
export class BlobCache {
  private readonly values = new Map<string, unknown>();
  constructor(private readonly fetch: (hash: Uint8Array) => Uint8Array, private readonly limit = 65536) {}

  get<T>(hash: Uint8Array, decode: (bytes: Uint8Array) => T): T {
    const id = Buffer.from(hash).toString('hex');
    let value = this.values.get(id) as T | undefined;
    if (value === undefined) {
      const bytes = this.fetch(hash);
      value = decode(bytes);
      if (value !== null && typeof value === 'object') hashCache.set(value as object, Buffer.from(hash));
      if (this.values.size >= this.limit) this.values.clear();
      this.values.set(id, value);
    }
    return value;
  }
}

/**
 * A page of a hydrated checkpoint whose bytes are read from the recording when first asked
 * for: a seek folds through few of a machine's pages, and reading every page of a checkpoint
 * was most of what a seek cost. A class, not a plain object, so that immer neither drafts
 * nor deep-freezes it (freezing would read every page); evolve replaces an entry rather than
 * editing it, so the lazy field is the only thing ever set.
 */
class StoredPage {
  private loaded: Uint8Array | undefined;
  constructor(private readonly hash: Uint8Array, private readonly blobs: BlobCache, readonly writer: DomainId) {}
  get bytes(): Uint8Array {
    return (this.loaded ??= this.blobs.get(this.hash, pageBytes));
  }
}

const pageBytes = (b: Uint8Array): Uint8Array => new Uint8Array(b);

/**
 * The state a checkpoint holds. With `lazyPages`, memory pages are read from the recording
 * when first touched (a damaged one is then reported by whoever touches it); without, all
 * are read, and checked, here.
 */
export function hydrate(bytes: Uint8Array, blobs: BlobCache, { lazyPages = false } = {}): MachineState {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the layout is dehydrate's, above
  const p = packr.unpack(bytes) as Record<string, any>;
  assert(p.v === SNAPSHOT_VERSION, () => `checkpoint version ${p.v}, expected ${SNAPSHOT_VERSION}`);
  const unpack = (b: Uint8Array): any => packr.unpack(b);
  return {
    config: blobs.get<MachineConfig>(p.config, unpack),
    profile: p.profile,
    quantum: p.quantum,
    flaws: p.flaws,
    booted: p.booted,
    halted: p.halted,
    tick: p.tick,
    prng: p.prng as PrngState,
    nextDomainId: p.nextDomainId,
    freeStack: p.freeStack,
    nextFresh: p.nextFresh,
    memory: new Map(p.memory.map(([mfn, hash, writer]: [number, Uint8Array, number]) => [mfn, lazyPages ? new StoredPage(hash, blobs, writer) : { bytes: blobs.get(hash, pageBytes), writer }])),
    ppt: new Map(p.ppt.map(([mfn, owner, rights]: number[]) => [mfn, { owner, rights }])),
    m2p: new Map(p.m2p.map(([mfn, dom, gfn]: number[]) => [mfn, { dom, gfn }])),
    keyTable: new Map(p.keyTable.map(([dom, key]: [number, Uint8Array]) => [dom, new Uint8Array(key)])),
    domains: new Map(p.domains.map((d: any): [number, Domain] => [d.id, {
      id: d.id, name: d.name, status: d.status, memoryKiB: d.memoryKiB, maxPages: d.maxPages,
      p2m: new Map(d.p2m),
      vcpus: d.vcpus.map(([pc, loops, x86]: [number, number[], unknown]): Vcpu => ({ pc, loops, x86: x86 ? hydrateX86(x86) : null })),
      programs: d.programs.map((hash: Uint8Array) => blobs.get<GuestOp[]>(hash, unpack)),
      kind: d.kind, paging: d.paging, ept: hydrateEpt(d.ept),
    }])),
    sched: p.sched,
    dom0Next: p.dom0Next,
    inputNext: p.inputNext,
    canaries: p.canaries.map(([dom, gpa, secret]: [number, number, Uint8Array]) => ({ dom, gpa, secret: new Uint8Array(secret) })),
    violations: p.violations,
    io: hydrateValue(p.io, blobs) as IoState,
  };
}

/** A state's identity: the hash of its canonical encoding (blobs by hash). */
export function stateDigest(state: MachineState): Buffer {
  return sha256(dehydrate(state, undefined).bytes);
}
