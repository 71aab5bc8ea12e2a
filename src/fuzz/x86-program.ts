/**
 * Generated x86 attackers: straight-line programs built from instruction templates that
 * exit to the hypervisor or touch what it guards (memory and its caches, hypercalls with
 * hostile arguments, PCI configuration ports, the VF's MMIO window, its own page tables and
 * control registers, a second address space to switch to), with raw bytes mixed in. Encoded
 * directly (no assembler), so a case costs microseconds to build. The guest starts with paging off (linear = guest-physical)
 * until a snippet builds a page directory and turns paging on.
 */
import fc from 'fast-check';
/** Pages of the attacker's memory (as a tenant's, actions.ts). */
const TENANT_PAGES = 8;

const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const MOV_EAX = 0xb8, MOV_ECX = 0xb9, MOV_EDX = 0xba, MOV_EBX = 0xbb, MOV_ESI = 0xbe;
const VMCALL = [0x0f, 0x01, 0xc1];
const HYPERCALL_MEMORY_OP = 12, HYPERCALL_SCHED_OP = 29;

/** memory_op(cmd, ecx, edx[, esi]) */
const memoryOp = (cmd: number, ecx: number, edx: number, esi = 0): number[] =>
  [MOV_EAX, ...u32(HYPERCALL_MEMORY_OP), MOV_EBX, ...u32(cmd), MOV_ECX, ...u32(ecx), MOV_EDX, ...u32(edx), MOV_ESI, ...u32(esi), ...VMCALL];

/** What the program ends with: cli; hlt, so the attacker waits for its next program. */
export const PARK = [0xfa, 0xf4];
/** sched_op(SCHEDOP_shutdown): the attacker ends itself. */
const SHUTDOWN = [MOV_EAX, ...u32(HYPERCALL_SCHED_OP), MOV_EBX, ...u32(2), ...VMCALL];

const page = fc.nat(TENANT_PAGES + 1);
const address = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0x2000, max: TENANT_PAGES * 4096 - 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xf0000000, 0xf0001018, 0xf0002018, 0xf0004008, TENANT_PAGES * 4096, 0xfee00000) },
);

/** The attacker's page directory (its own memory; paging is off until a snippet turns it on). */
const PAGE_DIRECTORY = 0x7000;
const CR4_PSE = 0x10, CR0_PG = 0x8000_0000;

/** Paging on: PDE 0 maps the first 4 MiB (PSE), CR3 -> the directory, CR4.PSE, CR0.PG. */
const PAGING_ON = [
  0xc7, 0x05, ...u32(PAGE_DIRECTORY), ...u32(0x83), // mov dword [PD], 0x83 (present, writable, 4 MiB)
  MOV_EAX, ...u32(PAGE_DIRECTORY), 0x0f, 0x22, 0xd8, // mov cr3, eax
  0x0f, 0x20, 0xe0, 0x0d, ...u32(CR4_PSE), 0x0f, 0x22, 0xe0, // cr4 |= PSE
  0x0f, 0x20, 0xc0, 0x0d, ...u32(CR0_PG), 0x0f, 0x22, 0xc0, // cr0 |= PG
];

/** A second address space: its own page directory (the first 4 MiB, PSE), CR3 loaded with it. */
const SECOND_DIRECTORY = 0x6000;
const OTHER_SPACE = [
  0xc7, 0x05, ...u32(SECOND_DIRECTORY), ...u32(0x83), // mov dword [PD2], 0x83
  MOV_EAX, ...u32(SECOND_DIRECTORY), 0x0f, 0x22, 0xd8, // mov cr3, eax
];
/** Back to the first address space: under shadow paging, a switch between two kept shadows. */
const FIRST_SPACE = [MOV_EAX, ...u32(PAGE_DIRECTORY), 0x0f, 0x22, 0xd8];

/**
 * Page-table manipulation: a PDE of the attacker's choosing (any frame number, any flags: a
 * 4 MiB page over memory it does not have, a table pointer into its own data), then INVLPG
 * of an address it covers, so the next access walks it.
 */
const pde = fc.record({ index: fc.nat(1023), frame: fc.oneof(fc.nat(0x3ff), fc.constantFrom(0x3c0, 0x3fb)), flags: fc.constantFrom(0x83, 0x87, 0x03, 0x01, 0x80) })
  .map(({ index, frame, flags }) => [
    0xc7, 0x05, ...u32(PAGE_DIRECTORY + index * 4), ...u32(((frame << 22) | flags) >>> 0),
    0x0f, 0x01, 0x3d, ...u32((index << 22) >>> 0), // invlpg [index << 22]
  ]);

const snippet: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(PAGING_ON) },
  { weight: 2, arbitrary: pde },
  { weight: 1, arbitrary: fc.constant(OTHER_SPACE) },
  { weight: 1, arbitrary: fc.constant(FIRST_SPACE) },
  { weight: 3, arbitrary: address.map((a) => [0xa1, ...u32(a)]) }, // mov eax, [a]
  { weight: 3, arbitrary: fc.tuple(address, fc.nat()).map(([a, v]) => [MOV_EAX, ...u32(v), 0xa3, ...u32(a)]) }, // mov [a], eax
  { weight: 3, arbitrary: fc.tuple(page, fc.integer({ min: 1, max: 2 })).map(([g, n]) => memoryOp(1, g, n)) }, // decrease_reservation(gfn, n)
  { weight: 2, arbitrary: fc.tuple(page, fc.integer({ min: 1, max: 2 })).map(([g, n]) => memoryOp(6, g, n)) }, // populate_physmap
  { weight: 2, arbitrary: fc.tuple(fc.nat(4), page, page).map(([d, g, p]) => memoryOp(7, d, g, p)) }, // add_to_physmap
  { weight: 1, arbitrary: address.map((a) => [0x0f, 0x01, 0x3d, ...u32(a)]) }, // invlpg [a]
  { weight: 3, arbitrary: fc.nat(0x40000001).map((leaf) => [MOV_EAX, ...u32(leaf), 0x0f, 0xa2]) }, // cpuid
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(0xcf8, 0xcfc, 0xcfe, 0xe9, 0x80), fc.constantFrom(0x80002000, 0x80002004, 0x80002070, 0x80000000)).map(([p, v]) => [MOV_EDX, ...u32(p), MOV_EAX, ...u32(v), 0xef, 0xed]) }, // out dx, eax; in eax, dx
  // The MSRs Xen gives an HVM guest: rdmsr of one it reads (TSC, APIC base, x2APIC timer),
  // wrmsr of one it takes (TSC, the timer's initial count, EOI) with the value read.
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(0x10, 0x1b, 0x832, 0x838, 0x839), fc.constantFrom(0x10, 0x838, 0x80b))
      .map(([read, write]) => [MOV_ECX, ...u32(read), 0x0f, 0x32, MOV_ECX, ...u32(write), 0x0f, 0x30]),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => [...b]) },
  { weight: 1, arbitrary: fc.constant(SHUTDOWN) },
);

const MOV_EDI = 0xbf, DEC_EDI = 0x4f;
/** jnz rel32 back to `distance` bytes before the end of this instruction. */
const jnzBack = (distance: number): number[] => [0x0f, 0x85, ...u32(-distance >>> 0)];

/**
 * A program: snippets run `rounds` times (EDI counts; no template touches it), then parked.
 * Rounds make a case exit-dense for little generation cost.
 */
export const x86Program: fc.Arbitrary<Uint8Array> = fc.tuple(fc.array(snippet, { minLength: 1, maxLength: 12 }), fc.constantFrom(1, 8, 64, 256))
  .map(([parts, rounds]) => {
    const body = parts.flat();
    return Uint8Array.from([MOV_EDI, ...u32(rounds), ...body, DEC_EDI, ...jnzBack(body.length + 1 + 6), ...PARK]);
  });
