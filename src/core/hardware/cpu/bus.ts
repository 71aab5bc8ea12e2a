// The interpreter's only window on memory. The machine implements it with the guest's page
// tables, EPT or shadow paging and the SMM behind it, so the interpreter sees linear
// addresses only and never learns how they were translated.

/**
 * Why an access could not complete. An 'exception' is architectural and belongs to the guest
 * (a #PF from its own page tables); an 'exit' belongs to the hypervisor (EPT violation 48,
 * EPT misconfiguration 49, or a #PF that shadow paging intercepts).
 */
export type Fault =
  | { kind: 'exception'; vector: number; errorCode: number | null; cr2?: number }
  | { kind: 'exit'; reason: number; qualification: number; gla: number | null; gpa: number | null };

export type AccessSize = 1 | 2 | 4;

export interface CpuBus {
  /** Fetches up to `count` instruction bytes at a linear address (fewer if a later page faults; a Fault if the first byte does). */
  fetch(linear: number, count: number): Uint8Array | Fault;
  /** Little-endian, unsigned. */
  read(linear: number, bytes: AccessSize): number | Fault;
  /** The machine buffers writes until the instruction retires and serves later reads from the buffer. */
  write(linear: number, bytes: AccessSize, value: number): Fault | undefined;
  /**
   * True when fetch returns views of buffers that never change (memory replaced, not
   * mutated, on write): the interpreter may then cache decoded instructions by buffer.
   */
  readonly immutableFetch?: boolean;
  /**
   * The whole 4 KiB page (its bytes as the CPU reads them) that holds `linear`, translated for
   * an instruction fetch, or the fault that fetch takes. Only for buses whose pages never
   * change (replaced, not mutated, on write), so the interpreter may cache decodes by page.
   */
  fetchPage?(linear: number): Uint8Array | Fault;
}

export function isFault(value: unknown): value is Fault {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array);
}
