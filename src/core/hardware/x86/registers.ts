// IA-32 register file names and numbers (Intel SDM Vol. 2, Table 2-1 and Table 2-2).
// The number of a general-purpose register is the value that appears in ModRM.reg,
// ModRM.rm, SIB.base, SIB.index and the low three bits of "+r" opcodes.

export type GeneralRegisterSize = 8 | 16 | 32;

export const EAX = 0;
export const ECX = 1;
export const EDX = 2;
export const EBX = 3;
export const ESP = 4;
export const EBP = 5;
export const ESI = 6;
export const EDI = 7;

export interface GeneralRegister {
  readonly kind: 'gpr';
  readonly size: GeneralRegisterSize;
  /** 0..7, the encoding number (for 8-bit: AL CL DL BL AH CH DH BH). */
  readonly number: number;
}

export interface ControlRegister {
  readonly kind: 'cr';
  /** Only CR0, CR2, CR3 and CR4 exist in 32-bit mode; CR1 and CR5-CR7 raise #UD. */
  readonly number: 0 | 2 | 3 | 4;
}

export type Register = GeneralRegister | ControlRegister;

const GPR_NAMES: Readonly<Record<GeneralRegisterSize, readonly string[]>> = {
  8: ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'],
  16: ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'],
  32: ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'],
};

const VALID_CONTROL_REGISTERS: readonly number[] = [0, 2, 3, 4];

// Interned register objects, so that registers compare by identity and cost no allocation
// when the decoder hands them out.
const GPRS: Readonly<Record<GeneralRegisterSize, readonly GeneralRegister[]>> = {
  8: makeGprs(8),
  16: makeGprs(16),
  32: makeGprs(32),
};

const CONTROL_REGISTERS: ReadonlyMap<number, ControlRegister> = new Map(
  VALID_CONTROL_REGISTERS.map((n) => [n, Object.freeze({ kind: 'cr', number: n }) as ControlRegister]),
);

function makeGprs(size: GeneralRegisterSize): readonly GeneralRegister[] {
  return Object.freeze(
    Array.from({ length: 8 }, (_, number) => Object.freeze({ kind: 'gpr', size, number }) as GeneralRegister),
  );
}

export function gpr(size: GeneralRegisterSize, number: number): GeneralRegister {
  const register = GPRS[size][number];
  if (register === undefined) throw new RangeError(`no general register ${number} of size ${size}`);
  return register;
}

/** Returns undefined for CR1 and CR5-CR7, which do not exist (#UD). */
export function controlRegister(number: number): ControlRegister | undefined {
  return CONTROL_REGISTERS.get(number);
}

export function registerName(register: Register): string {
  if (register.kind === 'cr') return `cr${register.number}`;
  return GPR_NAMES[register.size][register.number];
}

const REGISTERS_BY_NAME: ReadonlyMap<string, Register> = buildNameTable();

function buildNameTable(): ReadonlyMap<string, Register> {
  const table = new Map<string, Register>();
  for (const size of [8, 16, 32] as const) {
    GPR_NAMES[size].forEach((name, number) => table.set(name, gpr(size, number)));
  }
  for (const register of CONTROL_REGISTERS.values()) table.set(registerName(register), register);
  return table;
}

/** Case-insensitive, as NASM treats register names. */
export function parseRegister(name: string): Register | undefined {
  return REGISTERS_BY_NAME.get(name.toLowerCase());
}
