// 32-bit ModRM/SIB addressing (SDM Vol. 2, Tables 2-2 and 2-3), in both directions: the
// decoder reads it, the assembler writes it. The choice of displacement size is the
// assembler's business; this file only knows what each encoding means.

import { EBP, ESP, gpr } from './registers.ts';
import type { GeneralRegister } from './registers.ts';

export interface Modrm {
  readonly mod: number;
  readonly reg: number;
  readonly rm: number;
}

export function splitModrm(byte: number): Modrm {
  return { mod: byte >> 6, reg: (byte >> 3) & 7, rm: byte & 7 };
}

export function joinModrm(mod: number, reg: number, rm: number): number {
  return (mod << 6) | (reg << 3) | rm;
}

/** What the decoder needs to pull SIB and displacement bytes. */
export interface ByteSource {
  byte(): number;
  int8(): number;
  int32(): number;
}

export interface Address {
  readonly base: GeneralRegister | null;
  readonly index: GeneralRegister | null;
  readonly scale: 1 | 2 | 4 | 8;
  readonly displacement: number;
  readonly displacementSize: 0 | 8 | 32;
}

const SCALES = [1, 2, 4, 8] as const;
// rm = 100 announces a SIB byte; mod = 00 with rm (or SIB.base) = 101 means "disp32, no base".
const RM_SIB = 4;
const RM_DISP32 = 5;

/** Decodes the memory operand of a ModRM byte whose mod is not 11b. */
export function readAddress(modrm: Modrm, source: ByteSource): Address {
  let base: GeneralRegister | null = gpr(32, modrm.rm);
  let index: GeneralRegister | null = null;
  let scale: 1 | 2 | 4 | 8 = 1;
  let baseNumber = modrm.rm;
  if (modrm.rm === RM_SIB) {
    const sib = source.byte();
    scale = SCALES[sib >> 6];
    const indexNumber = (sib >> 3) & 7;
    // SIB.index = 100 means "no index" (ESP cannot be an index).
    index = indexNumber === ESP ? null : gpr(32, indexNumber);
    baseNumber = sib & 7;
    base = gpr(32, baseNumber);
  }
  if (modrm.mod === 0 && baseNumber === RM_DISP32) {
    return { base: null, index, scale, displacement: source.int32(), displacementSize: 32 };
  }
  if (modrm.mod === 1) return { base, index, scale, displacement: source.int8(), displacementSize: 8 };
  if (modrm.mod === 2) return { base, index, scale, displacement: source.int32(), displacementSize: 32 };
  return { base, index, scale, displacement: 0, displacementSize: 0 };
}

/** An address as the assembler wants it encoded: register numbers and a chosen displacement size. */
export interface AddressEncoding {
  readonly base: number | null;
  readonly index: number | null;
  readonly scale: 1 | 2 | 4 | 8;
  readonly displacement: number;
  readonly displacementSize: 0 | 8 | 32;
}

/** ModRM, optional SIB and displacement bytes for a memory operand; `reg` fills ModRM.reg. */
export function encodeAddress(address: AddressEncoding, reg: number): number[] {
  if (address.index === ESP) throw new Error('ESP cannot be an index register');
  if (address.base === null && address.index === null) {
    return [joinModrm(0, reg, RM_DISP32), ...littleEndian(address.displacement, 4)];
  }
  if (address.base === null) {
    const sib = joinModrm(Math.log2(address.scale), address.index ?? ESP, RM_DISP32);
    return [joinModrm(0, reg, RM_SIB), sib, ...littleEndian(address.displacement, 4)];
  }
  if (address.base === EBP && address.displacementSize === 0) {
    throw new Error('[ebp] needs a displacement: mod 00 with base 101 means disp32');
  }
  const mod = address.displacementSize === 0 ? 0 : address.displacementSize === 8 ? 1 : 2;
  const displacement = littleEndian(address.displacement, address.displacementSize / 8);
  if (address.index === null && address.base !== ESP) {
    return [joinModrm(mod, reg, address.base), ...displacement];
  }
  const sib = joinModrm(Math.log2(address.scale), address.index ?? ESP, address.base);
  return [joinModrm(mod, reg, RM_SIB), sib, ...displacement];
}

/** The low `count` (at most 4) bytes of a value, least significant first, two's complement. */
export function littleEndian(value: number, count: number): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < count; i += 1) bytes.push((value >>> (8 * i)) & 0xff);
  return bytes;
}
