/**
 * fast-check arbitraries for x86 guests: random byte strings and random instruction
 * sequences, written as NASM text (the scenario's `guest.x86.asm`) and wrapped into a
 * scenario with one small x86 domain (and sometimes a scripted victim domain that plants a
 * canary), serialised with js-yaml and compiled with `parseScenario`.
 *
 * Guest memory map (memoryKiB >= 64, so everything below fits in every domain):
 *   0x0000          page 0 (the reset IDTR points here: all zeros, so no valid gate)
 *   0x1000-0x67ff   the image: prologue, the generated code, epilogue, handler stubs
 *   0x6800          RECOVER: where the fault handler resumes (chunked programs)
 *   0x6c00          IDT (256 gates): gates 0-127 on page 6, gates 128-255 on page 7
 *   0x8000          page directory (paging programs)
 *   0x9000          page table (identity map)
 *   0xa000-...      data area; the stack is the domain's last page (ESP = top of memory)
 */
import fc from 'fast-check';
import yaml from 'js-yaml';
import type { Profile } from '../src/events/schema.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';

export const ORG = 0x1000;
export const IDT = 0x6c00;
export const RECOVER = 0x6800;
export const PD = 0x8000;
export const PT = 0x9000;
export const DATA = 0xa000;
/** The image must end below RECOVER. */
export const IMAGE_LIMIT = RECOVER;
/** Bytes per handler stub (call near common). */
export const STUB_BYTES = 5;
export const PAGE = 4096;

export type Paging = 'ept' | 'shadow';

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

// ---- scenarios --------------------------------------------------------------------------

export interface X86ScenarioDraft {
  seed: number;
  profile: Profile;
  paging: Paging;
  memoryKiB: number;
  asm: string;
  /** A scripted domain that plants a canary and keeps yielding, so leaks have something to find. */
  victim: boolean;
  timeslice: number;
}

export interface X86Scenario {
  draft: X86ScenarioDraft;
  text: string;
  config: MachineConfig;
}

/** The scenario text for a draft (its x86 guest is the domain named "guest"). */
export function scenarioText(d: X86ScenarioDraft): string {
  const domains: unknown[] = [{
    name: 'guest', memoryKiB: d.memoryKiB, paging: d.paging, guest: { x86: { asm: d.asm } },
  }];
  if (d.victim) {
    domains.push({
      name: 'victim', memoryKiB: 16,
      guest: { ops: [{ canary: { gpa: 0x1000, len: 32 } }, { repeat: { times: 40, ops: ['yield', { read: { gpa: 0x1000, len: 32 } }] } }] },
    });
  }
  const doc = {
    seed: d.seed,
    machine: { memoryMiB: 2, pcpus: 1, profile: d.profile, timeslice: d.timeslice },
    dom0: { memoryKiB: 16 },
    domains,
  };
  return yaml.dump(doc, { noRefs: true, lineWidth: -1 });
}

export function buildScenario(draft: X86ScenarioDraft): X86Scenario {
  const text = scenarioText(draft);
  const scenario: X86Scenario = { draft, text, config: parseScenario(text, 'gen.yaml') };
  const image = scenario.config.domains[0].image!;
  if (image.load + image.bytes.length > IMAGE_LIMIT) throw new Error(`generated image ends at 0x${(image.load + image.bytes.length).toString(16)}, over RECOVER and the IDT`);
  // Counterexamples print as the scenario's YAML, ready to save and run with the CLI.
  Object.defineProperty(scenario, fc.toStringMethod, { value: () => `scenario (${draft.paging}, ${draft.profile}):\n${text}` });
  return scenario;
}

/** The same scenario under the other paging method (or profile). */
export function withPaging(s: X86Scenario, paging: Paging): X86Scenario {
  return buildScenario({ ...s.draft, paging });
}

// ---- the IDT prologue and the handlers --------------------------------------------------

export type HandlerMode =
  /** Print the vector, then CLI; HLT: the first fault ends the run. */
  | { kind: 'halt' }
  /** Print the vector, reset ESP, resume at the address stored in RECOVER. */
  | { kind: 'recover' }
  /** Reset ESP (or not) and jump to a fixed offset into the random code. */
  | { kind: 'jump'; target: string; resetStack: boolean };

export interface IdtOptions {
  /** The LIDT limit (0x7ff: all 256 gates). */
  limit: number;
  /** Gates damaged after the fill: [vector, high dword] (0: not present, type 0). */
  damage: [number, number][];
  /** 0x8e00 (interrupt gate) or 0x8f00 (trap gate) for every vector. */
  gateType: number;
  timerVector: number;
  mode: HandlerMode;
}

/**
 * Fills the IDT and loads it. Vector v's gate points at stub v, a 5-byte `call common` at
 * stubs + 5v, so the handler knows the vector from its return address.
 */
export function idtPrologue(o: IdtOptions): string {
  return [
    '  mov edi, IDT',
    '  mov eax, stubs',
    '  xor ebx, ebx',
    'idt_fill:',
    '  lea edx, [eax + 0x80000]',
    '  mov [edi], edx',
    `  mov dword [edi + 4], ${hex(o.gateType)}`,
    `  add eax, ${STUB_BYTES}`,
    '  add edi, 8',
    '  inc ebx',
    '  cmp ebx, 256',
    '  jb idt_fill',
    ...o.damage.map(([v, high]) => `  mov dword [IDT + ${v * 8 + 4}], ${hex(high)}`),
    '  lidt [idt_desc]',
  ].join('\n');
}

/** The stubs, the common handler and the LIDT operand (placed after the program). */
export function idtHandlers(o: IdtOptions, stackTop: number): string {
  const common = [
    'stubs:',
    '  times 256 call near stub_common',
    'stub_common:', // not "common": NASM reads that as its COMMON directive
    '  xchg eax, [esp]', // EAX saved; EAX = the stub's return address
    '  sub eax, stubs + 5', // EAX = 5 * vector
    '  out 0xe9, al',
    `  cmp eax, ${o.timerVector * STUB_BYTES}`,
    '  je timer_return',
  ];
  switch (o.mode.kind) {
    case 'halt':
      common.push('halt_forever:', '  cli', '  hlt', '  jmp halt_forever');
      break;
    case 'recover':
      common.push(`  mov esp, ${hex(stackTop)}`, '  jmp [RECOVER]');
      break;
    case 'jump':
      if (o.mode.resetStack) common.push(`  mov esp, ${hex(stackTop)}`);
      common.push(`  jmp ${o.mode.target}`);
      break;
  }
  // The timer's handler returns to the interrupted code, with EAX as it was.
  common.push('timer_return:', '  pop eax', '  iretd');
  return [...common, 'idt_desc:', `  dw ${hex(o.limit)}`, '  dd IDT'].join('\n');
}

export const idtOptions = (mode: fc.Arbitrary<HandlerMode>): fc.Arbitrary<IdtOptions> => fc.record({
  limit: fc.oneof({ weight: 6, arbitrary: fc.constant(0x7ff) }, { weight: 1, arbitrary: fc.constantFrom(0x7f, 0xff, 0x6f, 0x107, 0) }),
  damage: fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as [number, number][]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom(0, 6, 8, 11, 13, 14, 0x20, 0x80, 0xff), fc.constantFrom(0, 0x0e00, 0x8600, 0x8500)), { maxLength: 3 }) },
  ),
  gateType: fc.oneof({ weight: 4, arbitrary: fc.constant(0x8e00) }, { weight: 1, arbitrary: fc.constant(0x8f00) }),
  timerVector: fc.integer({ min: 0x20, max: 0x2f }),
  mode,
});

const header = (memoryKiB: number): string => [
  'bits 32',
  `org ${hex(ORG)}`,
  `IDT equ ${hex(IDT)}`,
  `RECOVER equ ${hex(RECOVER)}`,
  `PD equ ${hex(PD)}`,
  `PT equ ${hex(PT)}`,
  `STACK_TOP equ ${hex(memoryKiB * 1024)}`,
  'start:',
].join('\n');

const memoryKiB = fc.constantFrom(64, 128, 256);
const profile = fc.constantFrom<Profile>('secure', 'vanilla');
const paging = fc.constantFrom<Paging>('ept', 'shadow');
const seed = fc.integer({ min: 0, max: 1_000_000 });
const timeslice = fc.constantFrom(1000, 7, 50);

// ---- property 1: random bytes -----------------------------------------------------------

export interface BytesProgram {
  bytes: Uint8Array;
  idt: IdtOptions | null;
}

function bytesAsm(p: BytesProgram, kib: number): string {
  const lines = [header(kib)];
  if (p.idt) lines.push(idtPrologue(p.idt), '  jmp code');
  lines.push('code:');
  for (let i = 0; i < p.bytes.length; i += 16) lines.push(`  db ${[...p.bytes.subarray(i, i + 16)].map((b) => hex(b)).join(', ')}`);
  if (p.idt) lines.push(idtHandlers(p.idt, kib * 1024));
  return `${lines.join('\n')}\n`;
}

/** Bytes biased towards what makes x86 code interesting: prefixes, 0F, ModRM-heavy opcodes. */
const codeByte = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 1, arbitrary: fc.constantFrom(0x0f, 0x66, 0xf3, 0xf2, 0xcd, 0xcc, 0xf4, 0xfa, 0xfb, 0xe4, 0xe6, 0xec, 0xee, 0xcf, 0xff, 0x00, 0x22, 0x20, 0x01, 0x30, 0x32) },
);

export function randomBytesScenario(): fc.Arbitrary<X86Scenario> {
  return fc.record({
    seed, profile, paging, memoryKiB, timeslice, victim: fc.boolean(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }).chain((b) => fc.oneof(
      fc.constant(b),
      fc.array(codeByte, { minLength: 1, maxLength: 200 }).map((a) => Uint8Array.from(a)),
    )),
    withIdt: fc.boolean(),
    jumpOffset: fc.nat(199),
    resetStack: fc.boolean(),
  }).chain((r) => {
    const target = `code + ${r.jumpOffset % r.bytes.length}`;
    const mode = fc.oneof(
      fc.constant<HandlerMode>({ kind: 'halt' }),
      fc.constant<HandlerMode>({ kind: 'jump', target, resetStack: r.resetStack }),
    );
    const idt = r.withIdt ? idtOptions(mode) : fc.constant(null);
    return idt.map((idtOpts) => buildScenario({
      seed: r.seed, profile: r.profile, paging: r.paging, memoryKiB: r.memoryKiB, timeslice: r.timeslice, victim: r.victim,
      asm: bytesAsm({ bytes: r.bytes, idt: idtOpts }, r.memoryKiB),
    }));
  });
}

// ---- property 2: random instruction sequences ---------------------------------------------

const REGS = ['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi', 'ebp'] as const;
const reg = fc.constantFrom(...REGS);
const reg8 = fc.constantFrom('al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh');
const u32 = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xff }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1000, 0xfff) },
);

export interface ProgramOptions {
  memoryKiB: number;
  /** Paging may be turned on (an identity map) and page tables written. */
  paging: boolean;
  /** Everything stays inside guest memory, and nothing reads time (for EPT vs shadow). */
  contained: boolean;
}

/** Addresses for memory operands. */
function addresses(o: ProgramOptions): fc.Arbitrary<number> {
  const top = o.memoryKiB * 1024;
  const data = fc.integer({ min: DATA, max: top - PAGE - 4 });
  if (o.contained) return data;
  return fc.oneof(
    { weight: 4, arbitrary: data },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: top - 4 }) },
    { weight: 2, arbitrary: fc.integer({ min: top - 2, max: top + 0x4000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
    { weight: 1, arbitrary: fc.constantFrom(0, top - 1, top, 0xffff_fffc, 0xffff_ffff, IDT, RECOVER, PD, PT) },
  );
}

function aluLines(): fc.Arbitrary<string[]> {
  const binop = fc.constantFrom('add', 'sub', 'and', 'or', 'xor', 'adc', 'sbb', 'cmp', 'test');
  return fc.oneof(
    fc.tuple(reg, u32).map(([r, v]) => [`mov ${r}, ${hex(v)}`]),
    fc.tuple(binop, reg, reg).map(([op, a, b]) => [`${op} ${a}, ${b}`]),
    fc.tuple(binop, reg, u32).map(([op, a, v]) => [`${op} ${a}, ${hex(v)}`]),
    fc.tuple(fc.constantFrom('add', 'sub', 'xor', 'cmp'), reg8, fc.integer({ min: 0, max: 255 })).map(([op, a, v]) => [`${op} ${a}, ${v}`]),
    fc.tuple(fc.constantFrom('inc', 'dec', 'neg', 'not'), reg).map(([op, r]) => [`${op} ${r}`]),
    fc.tuple(fc.constantFrom('shl', 'shr', 'sar', 'rol', 'ror'), reg, fc.oneof(fc.integer({ min: 0, max: 31 }).map(String), fc.constant('cl'))).map(([op, r, n]) => [`${op} ${r}, ${n}`]),
    fc.tuple(reg, reg).map(([a, b]) => [`imul ${a}, ${b}`]),
    fc.tuple(fc.constantFrom('mul', 'div', 'idiv', 'imul'), reg).map(([op, r]) => [`${op} ${r}`]),
    fc.tuple(fc.constantFrom('div', 'idiv'), reg, u32).map(([op, r, v]) => [`xor edx, edx`, `mov ${r === 'edx' ? 'ecx' : r}, ${hex(v)}`, `${op} ${r === 'edx' ? 'ecx' : r}`]),
    fc.constant<string[]>(['cdq']),
    fc.tuple(reg, reg, fc.integer({ min: -128, max: 1024 })).map(([a, b, d]) => [`lea ${a}, [${b} + ${d}]`]),
    fc.tuple(reg, reg).map(([a, b]) => [`xchg ${a}, ${b}`]),
    fc.tuple(reg, reg8).map(([a, b]) => [`movzx ${a}, ${b}`]),
    fc.tuple(reg, reg8).map(([a, b]) => [`movsx ${a}, ${b}`]),
    fc.constantFrom<string[]>(['pushfd', 'pop eax'], ['nop']),
  );
}

function memoryLines(o: ProgramOptions): fc.Arbitrary<string[]> {
  const at = addresses(o);
  return fc.oneof(
    fc.tuple(reg, at).map(([r, a]) => [`mov ${r}, [${hex(a)}]`]),
    fc.tuple(reg, at).map(([r, a]) => [`mov [${hex(a)}], ${r}`]),
    fc.tuple(at, u32).map(([a, v]) => [`mov dword [${hex(a)}], ${hex(v)}`]),
    fc.tuple(at, fc.integer({ min: 0, max: 255 })).map(([a, v]) => [`mov byte [${hex(a)}], ${v}`]),
    fc.tuple(fc.constantFrom('add', 'sub', 'xor', 'and', 'or'), at, reg).map(([op, a, r]) => [`${op} [${hex(a)}], ${r}`]),
    fc.tuple(fc.constantFrom('inc', 'dec', 'not', 'neg'), at).map(([op, a]) => [`${op} dword [${hex(a)}]`]),
    fc.tuple(reg, at).map(([r, a]) => [`movzx ${r}, word [${hex(a)}]`]),
    fc.tuple(reg, at).map(([r, a]) => [`movsx ${r}, byte [${hex(a)}]`]),
    fc.tuple(reg, at, fc.integer({ min: -64, max: 64 })).map(([r, a, d]) => [`mov esi, ${hex(a)}`, `mov ${r}, [esi + ${d}]`]),
    fc.tuple(at, fc.integer({ min: 0, max: 24 }), fc.constantFrom('stosb', 'stosd', 'movsb', 'movsd', 'lodsd'), at)
      .map(([a, n, op, b]) => [`mov edi, ${hex(a)}`, `mov esi, ${hex(b)}`, `mov ecx, ${n}`, `rep ${op}`]),
    fc.tuple(reg, reg).map(([a, b]) => [`push ${a}`, `pop ${b}`]),
    fc.tuple(reg, u32).map(([a, v]) => [`push ${hex(v)}`, `pop ${a}`]),
    fc.constantFrom<string[]>(['pushad', 'popad'], ['push eax'], ['pop eax'], ['pushfd', 'popfd']),
    fc.tuple(at, reg).map(([a, r]) => [`xchg [${hex(a)}], ${r}`]),
  );
}

const MSRS = [0x10, 0x1b, 0x80b, 0x832, 0x838, 0x839, 0x83e, 0x9e, 0x1f2, 0x830, 0x480, 0x3a, 0xc0000080];

function systemLines(o: ProgramOptions): fc.Arbitrary<string[]> {
  const at = addresses(o);
  const port = fc.oneof(fc.constant(0xe9), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0xcf8, 0xcfc, 0x64, 0x92, 0x3f8, 0x80));
  const msr = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...MSRS) }, { weight: 1, arbitrary: u32 });
  const timer = fc.tuple(fc.integer({ min: 0x20, max: 0x2f }), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 400 }))
    .map(([v, periodic, masked, count]) => [
      'mov ecx, 0x832', `mov eax, ${hex(v | (periodic ? 1 << 17 : 0) | (masked ? 1 << 16 : 0))}`, 'xor edx, edx', 'wrmsr',
      'mov ecx, 0x838', `mov eax, ${count}`, 'wrmsr',
    ]);
  const hypercall = fc.oneof(
    // console_io write of some of our own code bytes (printable or not), or a hostile length/pointer
    fc.tuple(fc.oneof(fc.integer({ min: 0, max: 40 }), u32), fc.oneof(fc.integer({ min: ORG, max: ORG + 0x100 }), u32))
      .map(([len, ptr]) => ['mov eax, 18', 'xor ebx, ebx', `mov ecx, ${hex(len)}`, `mov edx, ${hex(ptr)}`, 'vmcall']),
    fc.constant<string[]>(['mov eax, 29', 'xor ebx, ebx', 'vmcall']),
    fc.tuple(fc.oneof(fc.integer({ min: 0, max: 80 }), u32), fc.oneof(fc.integer({ min: 0, max: 8 }), u32))
      .map(([gfn, count]) => ['mov eax, 12', 'mov ebx, 6', `mov ecx, ${hex(gfn)}`, `mov edx, ${hex(count)}`, 'vmcall']),
    fc.tuple(fc.oneof(fc.integer({ min: 0, max: 80 }), u32), fc.oneof(fc.integer({ min: 0, max: 8 }), u32))
      .map(([gfn, count]) => ['mov eax, 12', 'mov ebx, 1', `mov ecx, ${hex(gfn)}`, `mov edx, ${hex(count)}`, 'vmcall']),
    fc.tuple(fc.oneof(fc.constantFrom(0, 1, 12, 18, 29, 38), u32), u32, u32, u32)
      .map(([a, b, c, d]) => [`mov eax, ${hex(a)}`, `mov ebx, ${hex(b)}`, `mov ecx, ${hex(c)}`, `mov edx, ${hex(d)}`, 'vmcall']),
  );
  const choices: fc.Arbitrary<string[]>[] = [
    fc.tuple(port, fc.constantFrom('al', 'ax', 'eax')).map(([p, r]) => [`mov dx, ${hex(p)}`, `in ${r}, dx`]),
    fc.tuple(port, fc.constantFrom('al', 'ax', 'eax'), u32).map(([p, r, v]) => [`mov eax, ${hex(v)}`, `mov dx, ${hex(p)}`, `out dx, ${r}`]),
    fc.tuple(fc.integer({ min: 0, max: 255 }), u32).map(([p, v]) => [`mov eax, ${hex(v)}`, `out ${p}, al`]),
    fc.integer({ min: 0, max: 255 }).map((p) => [`in al, ${p}`]),
    fc.tuple(fc.integer({ min: 0x20, max: 0x7e })).map(([c]) => [`mov al, ${c}`, 'out 0xe9, al']),
    fc.oneof(fc.constantFrom(0, 1, 0x40000000, 0x40000001, 0x80000000), u32).map((leaf) => [`mov eax, ${hex(leaf)}`, 'cpuid']),
    hypercall,
    fc.constantFrom<string[]>(['sti'], ['cli'], ['sti'], ['cli'], ['sti', 'hlt'], ['nop'], ['pause'], ['hlt']),
    fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x20, 0x80, 3)).map((n) => [`int ${n}`]),
    fc.constant<string[]>(['int3']),
    // console_io of text anywhere in the domain: code, data written before or never touched
    fc.tuple(fc.integer({ min: 1, max: 40 }), fc.oneof(fc.integer({ min: ORG, max: ORG + 0x400 }), addresses({ ...o, contained: true })))
      .map(([len, ptr]) => ['mov eax, 18', 'xor ebx, ebx', `mov ecx, ${len}`, `mov edx, ${hex(ptr)}`, 'vmcall']),
  ];
  if (!o.contained) {
    choices.push(
      at.map((a) => [`invlpg [${hex(a)}]`]),
      timer,
      timer.map((t) => [...t, 'sti', 'hlt']),
      fc.tuple(msr).map(([m]) => [`mov ecx, ${hex(m)}`, 'rdmsr']),
      fc.tuple(msr, u32, u32).map(([m, a, d]) => [`mov ecx, ${hex(m)}`, `mov eax, ${hex(a)}`, `mov edx, ${hex(d)}`, 'wrmsr']),
      fc.constant<string[]>(['rdtsc']),
      fc.tuple(fc.constantFrom('cr0', 'cr3', 'cr4'), fc.oneof(
        u32,
        fc.constantFrom(0x11, 0x80000011, 0x80010011, 0x60000011, 0x20000011, 0x10, 0x1, PD, PD | 0x18, 0x2000, 0x10, 0x90, 0x30, 0x2010),
      )).map(([cr, v]) => [`mov eax, ${hex(v)}`, `mov ${cr}, eax`]),
      fc.constantFrom('cr0', 'cr2', 'cr3', 'cr4').map((cr) => [`mov eax, ${cr}`]),
      fc.oneof(addresses(o), fc.constantFrom(ORG, 0, 0xffff_fff0)).map((a) => [`mov eax, ${hex(a)}`, 'jmp eax']),
      fc.oneof(addresses(o), fc.constantFrom(ORG)).map((a) => [`mov eax, ${hex(a)}`, 'call eax']),
      fc.constantFrom<string[]>(['mov esp, 0x10'], ['mov esp, 0xfffffff0'], ['mov esp, 0x20000000']),
    );
  }
  return fc.oneof(...choices);
}

/** Writes of page-table entries (identity map at PT, directory at PD) and INVLPG. */
function pagingLines(o: ProgramOptions): fc.Arbitrary<string[]> {
  const pages = (o.memoryKiB * 1024) / PAGE;
  const gfn = fc.oneof(fc.integer({ min: 0, max: pages - 1 }), fc.integer({ min: pages, max: pages + 16 }), fc.integer({ min: 0, max: 0xfffff }));
  const flags = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0x3, 0x1, 0x0, 0x83, 0x63) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfff }) });
  const index = fc.oneof(fc.integer({ min: 0, max: pages + 4 }), fc.integer({ min: 0, max: 1023 }));
  return fc.oneof(
    fc.tuple(index, gfn, flags, fc.boolean()).map(([i, g, f, flush]) => [
      `mov dword [PT + ${i * 4}], ${hex(g * PAGE + f)}`, ...(flush ? [`invlpg [${hex(i * PAGE)}]`] : []),
    ]),
    fc.tuple(fc.integer({ min: 0, max: 1023 }), fc.oneof(gfn.map((g) => g * PAGE), fc.integer({ min: 0, max: 1023 }).map((l) => l << 22)), flags, fc.boolean())
      .map(([i, base, f, pse]) => [
        ...(pse ? ['mov eax, cr4', 'or eax, 0x10', 'mov cr4, eax'] : []),
        `mov dword [PD + ${i * 4}], ${hex(base + f)}`, `invlpg [${hex(i * 0x400000)}]`,
      ]),
    fc.constantFrom<string[]>(['mov eax, PD', 'mov cr3, eax'], ['mov eax, cr0', 'xor eax, 0x80000000', 'mov cr0, eax'], ['mov eax, cr0', 'or eax, 0x10000', 'mov cr0, eax']),
  );
}

/** Turns paging on with an identity map of the first `mapped` pages (PT at 0x9000). */
function pagingPrologue(mapped: number, pteFlags: number, wp: boolean): string {
  return [
    '  mov edi, PT',
    `  mov eax, ${hex(pteFlags)}`,
    `  mov ecx, ${mapped}`,
    'pt_fill:',
    '  mov [edi], eax',
    '  add eax, 0x1000',
    '  add edi, 4',
    '  dec ecx',
    '  jnz pt_fill',
    '  mov dword [PD], PT + 3',
    '  mov eax, PD',
    '  mov cr3, eax',
    '  mov eax, cr0',
    `  or eax, ${hex(0x80000000 | (wp ? 0x10000 : 0))}`,
    '  mov cr0, eax',
  ].join('\n');
}

export interface InstructionProgram {
  chunks: string[][];
  idt: IdtOptions | null;
  pagingSetup: { mapped: number; pteFlags: number; wp: boolean } | null;
  ending: 'shutdown' | 'halt';
}

function lineArbitrary(o: ProgramOptions): fc.Arbitrary<string[]> {
  const options: { weight: number; arbitrary: fc.Arbitrary<string[]> }[] = [
    { weight: 5, arbitrary: aluLines() },
    { weight: 4, arbitrary: memoryLines(o) },
    { weight: 3, arbitrary: systemLines(o) },
  ];
  if (o.paging && !o.contained) options.push({ weight: 2, arbitrary: pagingLines(o) });
  return fc.oneof(...options);
}

export function instructionProgram(o: ProgramOptions, maxChunks = 10): fc.Arbitrary<InstructionProgram> {
  const pages = (o.memoryKiB * 1024) / PAGE;
  const chunk = fc.array(lineArbitrary(o), { minLength: 1, maxLength: 4 }).map((ls) => ls.flat());
  return fc.record({
    chunks: fc.array(chunk, { minLength: 1, maxLength: maxChunks }),
    idt: o.contained
      ? idtOptions(fc.constant<HandlerMode>({ kind: 'recover' })).map((i) => ({ ...i, limit: 0x7ff, damage: [] as [number, number][] }))
      : fc.oneof(
        { weight: 5, arbitrary: idtOptions(fc.constantFrom<HandlerMode>({ kind: 'recover' }, { kind: 'recover' }, { kind: 'recover' }, { kind: 'halt' })) },
        { weight: 1, arbitrary: fc.constant(null) },
      ),
    pagingSetup: o.paging && !o.contained
      ? fc.option(fc.record({
        mapped: fc.oneof({ weight: 4, arbitrary: fc.constant(pages) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 1024 }) }),
        pteFlags: fc.oneof({ weight: 4, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: fc.constantFrom(1, 0x7, 0x63) }),
        wp: fc.boolean(),
      }), { freq: 3, nil: null })
      : fc.constant(null),
    ending: fc.constantFrom<InstructionProgram['ending']>('shutdown', 'halt'),
  });
}

export function instructionAsm(p: InstructionProgram, kib: number): string {
  const lines = [header(kib)];
  if (p.idt) lines.push(idtPrologue(p.idt));
  lines.push('  mov dword [RECOVER], done');
  if (p.pagingSetup) lines.push(pagingPrologue(p.pagingSetup.mapped, p.pagingSetup.pteFlags, p.pagingSetup.wp));
  p.chunks.forEach((chunk, k) => {
    lines.push(`chunk${k}:`, `  mov dword [RECOVER], ${k + 1 < p.chunks.length ? `chunk${k + 1}` : 'done'}`);
    for (const l of chunk) lines.push(`  ${l}`);
  });
  lines.push('done:');
  if (p.ending === 'shutdown') lines.push('  mov eax, 29', '  mov ebx, 2', '  vmcall', '  jmp done');
  else lines.push('  cli', '  hlt', '  jmp done');
  if (p.idt) lines.push(idtHandlers(p.idt, kib * 1024));
  return `${lines.join('\n')}\n`;
}

export function instructionScenario(options: { paging?: boolean; contained?: boolean; maxChunks?: number; victim?: boolean; profile?: Profile } = {}): fc.Arbitrary<X86Scenario> {
  return fc.record({ seed, profile: options.profile ? fc.constant(options.profile) : profile, paging, memoryKiB, timeslice, victim: options.victim === false ? fc.constant(false) : fc.boolean() })
    .chain((r) => instructionProgram({ memoryKiB: r.memoryKiB, paging: options.paging ?? true, contained: options.contained ?? false }, options.maxChunks)
      .map((p) => buildScenario({ ...r, asm: instructionAsm(p, r.memoryKiB) })));
}

// ---- faults through a damaged IDT -----------------------------------------------------------

/** Instructions that raise an exception: #DE, #UD, INT n, INT3, #GP (beyond memory), #PF. */
function faultLines(kib: number): fc.Arbitrary<string[]> {
  const top = kib * 1024;
  return fc.oneof(
    fc.constant<string[]>(['xor ecx, ecx', 'div ecx']),
    fc.constant<string[]>(['db 0x0f, 0xff']),
    fc.constant<string[]>(['int3']),
    fc.oneof(fc.constantFrom(0, 6, 8, 11, 13, 14, 0x80), fc.integer({ min: 0, max: 255 })).map((n) => [`int ${n}`]),
    fc.integer({ min: top, max: top + 0x8000 }).map((a) => [`mov eax, [${hex(a)}]`]),
    // #PF: paging on with page 0x40 (linear 0x40000) not present
    fc.constant<string[]>(['mov eax, [0x40000]']),
    // a stack that cannot take the exception frame
    fc.constantFrom<string[]>(['mov esp, 0x40010', 'db 0x0f, 0xff'], [`mov esp, ${hex(top + 0x10)}`, 'int3'], ['mov esp, 0x7010', 'xor ecx, ecx', 'div ecx']),
  );
}

/**
 * Programs whose faults meet a damaged IDT (gates not present, of a bad type, beyond the
 * limit), so that delivery itself faults: serially, as a double fault, or as a triple fault.
 */
export function faultScenario(): fc.Arbitrary<X86Scenario> {
  return fc.record({ seed, profile, paging, memoryKiB, timeslice: fc.constant(1000), victim: fc.constant(false) }).chain((r) => {
    const vectors = fc.oneof(fc.constantFrom(0, 3, 6, 8, 11, 13, 14, 0x80), fc.integer({ min: 0, max: 255 }));
    const idt = idtOptions(fc.constantFrom<HandlerMode>({ kind: 'recover' }, { kind: 'halt' })).chain((o) =>
      fc.array(fc.tuple(vectors, fc.constantFrom(0, 0x0e00, 0x8600, 0x8500, 0x0f00)), { minLength: 1, maxLength: 5 }).map((damage) => ({ ...o, damage })));
    const program = fc.record({
      idt,
      chunks: fc.array(faultLines(r.memoryKiB).map((l) => [l]), { minLength: 1, maxLength: 6 }).map((cs) => cs.map((c) => c.flat())),
      paging: fc.boolean(),
    });
    return program.map((p) => {
      const pages = (r.memoryKiB * 1024) / PAGE;
      const prog: InstructionProgram = {
        idt: p.idt, chunks: p.chunks, ending: 'halt',
        pagingSetup: p.paging ? { mapped: Math.min(pages, 0x40), pteFlags: 3, wp: false } : null,
      };
      return buildScenario({ ...r, asm: instructionAsm(prog, r.memoryKiB) });
    });
  });
}

// ---- the local APIC timer --------------------------------------------------------------------

export const TIMER_VECTOR = 0x21;
export const LVT_MASKED = 1 << 16;
export const LVT_PERIODIC = 1 << 17;

/** One step of a timer program ('#' in a label becomes the step's index). */
function timerLine(): fc.Arbitrary<string[]> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.tuple(fc.boolean(), fc.boolean()).map(([masked, periodic]) =>
      ['mov ecx, 0x832', `mov eax, ${hex(TIMER_VECTOR | (masked ? LVT_MASKED : 0) | (periodic ? LVT_PERIODIC : 0))}`, 'xor edx, edx', 'wrmsr']) },
    { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 1, max: 120 }), fc.constant(0)).map((count) => ['mov ecx, 0x838', `mov eax, ${count}`, 'xor edx, edx', 'wrmsr']) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 150 }).map((n) => [`mov ecx, ${n}`, 'spin#:', 'nop', 'loop spin#']) },
    { weight: 2, arbitrary: fc.constantFrom<string[]>(['sti', 'hlt'], ['sti', 'nop', 'hlt'], ['hlt'], ['sti'], ['cli'], ['mov ecx, 0x80b', 'xor eax, eax', 'xor edx, edx', 'wrmsr']) },
    { weight: 1, arbitrary: fc.constantFrom<string[]>(['mov ecx, 0x832', 'rdmsr'], ['mov ecx, 0x839', 'rdmsr'], ['mov al, 0x2e', 'out 0xe9, al']) },
  );
}

/**
 * Random programming of the x2APIC timer (LVT, initial count, EOI) with STI/CLI/HLT. With
 * `thenWait`, the program ends by arming an unmasked timer and waiting for it in HLT with
 * interrupts enabled (one of the usual idle sequences).
 */
export function timerScenario(options: { thenWait?: boolean } = {}): fc.Arbitrary<X86Scenario> {
  const wait = options.thenWait
    ? fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 120 }), fc.constantFrom<string[]>(['sti', 'hlt'], ['sti', 'nop', 'hlt'], ['sti', 'mov al, 0x2e', 'out 0xe9, al', 'hlt']))
      .map(([periodic, count, idle]) => [
        'mov ecx, 0x832', `mov eax, ${hex(TIMER_VECTOR | (periodic ? LVT_PERIODIC : 0))}`, 'xor edx, edx', 'wrmsr',
        'mov ecx, 0x838', `mov eax, ${count}`, 'wrmsr', ...idle,
      ])
    : fc.constant<string[]>([]);
  return fc.record({
    seed, profile, paging, memoryKiB: fc.constant(64), timeslice: fc.constantFrom(1000, 50), victim: fc.constant(false),
    lines: fc.array(timerLine(), { minLength: options.thenWait ? 0 : 1, maxLength: 14 }).map((ls) => ls.map((l, k) => l.map((line) => line.replace('#', String(k))))),
    wait,
    ending: fc.constantFrom<InstructionProgram['ending']>('shutdown', 'halt'),
  }).map(({ lines, wait: waitLines, ending, ...r }) => buildScenario({
    ...r,
    asm: instructionAsm({
      idt: { limit: 0x7ff, damage: [], gateType: 0x8e00, timerVector: TIMER_VECTOR, mode: { kind: 'recover' } },
      chunks: [[...lines.flat(), ...waitLines]], ending, pagingSetup: null,
    }, r.memoryKiB),
  }));
}

// ---- port I/O --------------------------------------------------------------------------------

/** IN and OUT of every width, on random ports, with random values in EAX. */
export function ioScenario(): fc.Arbitrary<X86Scenario> {
  const port = fc.oneof(fc.constant(0xe9), fc.integer({ min: 0, max: 0xffff }));
  const line = fc.oneof(
    fc.tuple(port, fc.constantFrom('al', 'ax', 'eax'), u32).map(([p, r, v]) => [`mov eax, ${hex(v)}`, `mov dx, ${hex(p)}`, `out dx, ${r}`]),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom('al', 'ax', 'eax'), u32).map(([p, r, v]) => [`mov eax, ${hex(v)}`, `out ${p}, ${r}`]),
    fc.tuple(port, fc.constantFrom('al', 'ax', 'eax'), u32).map(([p, r, v]) => [`mov eax, ${hex(v)}`, `mov dx, ${hex(p)}`, `in ${r}, dx`]),
  );
  return fc.record({ seed, profile, paging, memoryKiB: fc.constant(64), timeslice: fc.constant(1000), victim: fc.constant(false), lines: fc.array(line, { minLength: 1, maxLength: 8 }) })
    .map(({ lines, ...r }) => buildScenario({
      ...r,
      asm: instructionAsm({ idt: null, chunks: [lines.flat()], ending: 'shutdown', pagingSetup: null }, r.memoryKiB),
    }));
}

// ---- faults during delivery, from the guest's own page tables ---------------------------------

/**
 * Paging on (an identity map of the whole domain), then pages the delivery of an event needs
 * are unmapped and mapped again (each PTE write followed by INVLPG, so no stale translation is
 * ever allowed): the upper half of the IDT (page 7: gates 128-255), the stack page, data pages.
 * Between them, instructions that fault or raise INT n. Architecturally a #PF while
 * delivering is handled serially (after INT n or a benign fault) or becomes #DF.
 */
export function pagingDeliveryScenario(): fc.Arbitrary<X86Scenario> {
  const kib = 64;
  const pages = (kib * 1024) / PAGE;
  const stackPage = pages - 1;
  const page = fc.constantFrom(7, stackPage, 10, 11);
  const line = fc.oneof(
    { weight: 2, arbitrary: page.map((p) => [`mov dword [PT + ${p * 4}], 0`, `invlpg [${hex(p * PAGE)}]`]) },
    { weight: 1, arbitrary: page.map((p) => [`mov dword [PT + ${p * 4}], ${hex(p * PAGE + 3)}`, `invlpg [${hex(p * PAGE)}]`]) },
    { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0x7f })).map((n) => [`int ${n}`]) },
    { weight: 2, arbitrary: fc.constantFrom<string[]>(['xor ecx, ecx', 'div ecx'], ['db 0x0f, 0xff'], ['int3'], ['mov eax, [0xa010]'], ['mov [0xb020], eax'], ['push eax', 'pop eax']) },
    { weight: 1, arbitrary: aluLines() },
  );
  return fc.record({
    seed, profile, paging, memoryKiB: fc.constant(kib), timeslice: fc.constant(1000), victim: fc.constant(false),
    chunks: fc.array(fc.array(line, { minLength: 1, maxLength: 3 }).map((ls) => ls.flat()), { minLength: 1, maxLength: 8 }),
    gateType: fc.constantFrom(0x8e00, 0x8f00),
  }).map(({ chunks, gateType, ...r }) => buildScenario({
    ...r,
    asm: instructionAsm({
      idt: { limit: 0x7ff, damage: [], gateType, timerVector: 0x20, mode: { kind: 'recover' } },
      chunks, ending: 'shutdown', pagingSetup: { mapped: pages, pteFlags: 3, wp: false },
    }, r.memoryKiB),
  }));
}

// ---- address spaces: CR3 switches, and the tables of one not running changed -------------------

/** Layout of the address-space programs (a 128 KiB guest; identity map of it in both spaces). */
export const ADDRESS_SPACES = {
  kib: 128, pdA: 0x10000, pdB: 0x11000, ptIdentity: 0x12000, ptWindowA: 0x13000, ptWindowB: 0x14000,
  /** Four data frames the window pages map, each holding its own values. */
  data: [0x18000, 0x19000, 0x1a000, 0x1b000],
  /** Linear address of the window (PDE 1): four pages, each mapped to one data frame. */
  window: 0x400000,
} as const;

export type AddressSpaceStep =
  | { kind: 'switch'; to: 'A' | 'B' }
  | { kind: 'retarget'; space: 'A' | 'B'; page: number; frame: number }
  | { kind: 'read'; page: number; dword: number }
  | { kind: 'write'; page: number; dword: number; value: number };

/** The prologue: data frames filled, both spaces' tables built, paging on in space A. */
export function addressSpacePrologue(): string[] {
  const L = ADDRESS_SPACES;
  const lines: string[] = [];
  L.data.forEach((frame, j) => {
    for (let d = 0; d < 4; d++) lines.push(`mov dword [${hex(frame + d * 4)}], ${hex(0x1000_0000 * (j + 1) + d)}`);
  });
  lines.push(
    `mov edi, ${hex(L.ptIdentity)}`, 'mov eax, 3', `mov ecx, ${(L.kib * 1024) / PAGE}`,
    'as_fill:', 'mov [edi], eax', 'add eax, 0x1000', 'add edi, 4', 'dec ecx', 'jnz as_fill',
  );
  for (const [pd, pt] of [[L.pdA, L.ptWindowA], [L.pdB, L.ptWindowB]]) {
    lines.push(`mov dword [${hex(pd)}], ${hex(L.ptIdentity + 3)}`, `mov dword [${hex(pd + 4)}], ${hex(pt + 3)}`);
  }
  for (let k = 0; k < 4; k++) {
    lines.push(`mov dword [${hex(L.ptWindowA + k * 4)}], ${hex(L.data[k] + 3)}`, `mov dword [${hex(L.ptWindowB + k * 4)}], ${hex(L.data[3 - k] + 3)}`);
  }
  lines.push(`mov eax, ${hex(L.pdA)}`, 'mov cr3, eax', 'mov eax, cr0', 'or eax, 0x80000000', 'mov cr0, eax', 'xor esi, esi');
  return lines;
}

/**
 * A step as instructions. A retarget of the running space's table is followed by INVLPG (a
 * guest may not rely on a stale TLB entry); one of the other space's is not: the CR3 load
 * that switches to it flushes the TLB, and must show the new mapping.
 */
export function addressSpaceLines(step: AddressSpaceStep, running: 'A' | 'B'): string[] {
  const L = ADDRESS_SPACES;
  const linear = (page: number, dword: number): string => hex(L.window + page * PAGE + dword * 4);
  switch (step.kind) {
    case 'switch': return [`mov eax, ${hex(step.to === 'A' ? L.pdA : L.pdB)}`, 'mov cr3, eax'];
    case 'retarget': {
      const table = step.space === 'A' ? L.ptWindowA : L.ptWindowB;
      const write = `mov dword [${hex(table + step.page * 4)}], ${hex(L.data[step.frame] + 3)}`;
      return step.space === running ? [write, `invlpg [${linear(step.page, 0)}]`] : [write];
    }
    case 'read': return [`mov ebx, [${linear(step.page, step.dword)}]`, 'add esi, ebx'];
    case 'write': return [`mov dword [${linear(step.page, step.dword)}], ${hex(step.value)}`];
  }
}

export function addressSpaceAsm(steps: readonly AddressSpaceStep[]): string {
  const lines = [header(ADDRESS_SPACES.kib), ...addressSpacePrologue().map((l) => (l.endsWith(':') ? l : `  ${l}`))];
  let running: 'A' | 'B' = 'A';
  for (const step of steps) {
    lines.push(...addressSpaceLines(step, running).map((l) => `  ${l}`));
    if (step.kind === 'switch') running = step.to;
  }
  lines.push('  mov eax, 29', '  mov ebx, 2', '  vmcall');
  return `${lines.join('\n')}\n`;
}

const space = fc.constantFrom<'A' | 'B'>('A', 'B');
const windowPage = fc.integer({ min: 0, max: 3 });
const access: fc.Arbitrary<AddressSpaceStep> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), page: windowPage, dword: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('write' as const), page: windowPage, dword: fc.integer({ min: 0, max: 3 }), value: fc.integer({ min: 0, max: 0xffff_ffff }) }) },
);
/** A round: a switch, tables changed (either space's), then accesses through the window. */
const round: fc.Arbitrary<AddressSpaceStep[]> = fc.tuple(
  space,
  fc.array(fc.record({ kind: fc.constant('retarget' as const), space, page: windowPage, frame: fc.integer({ min: 0, max: 3 }) }), { maxLength: 3 }),
  fc.array(access, { minLength: 1, maxLength: 6 }),
).map(([to, retargets, accesses]) => [{ kind: 'switch' as const, to }, ...retargets, ...accesses]);

/** Programs that switch between two address spaces and change the tables of the one not running. */
export function addressSpaceScenario(): fc.Arbitrary<X86Scenario> {
  return fc.record({
    seed, profile, paging, memoryKiB: fc.constant(ADDRESS_SPACES.kib), timeslice, victim: fc.constant(false),
    rounds: fc.array(round, { minLength: 2, maxLength: 8 }),
  }).map(({ rounds, ...r }) => buildScenario({ ...r, asm: addressSpaceAsm(rounds.flat()) }));
}
