// MUL/IMUL/DIV/IDIV arithmetic on size-bit operands, kept free of CPU state so the 64-bit
// corner cases can be read (and tested) on their own. 8- and 16-bit products and dividends
// fit a double exactly; 32-bit products are built from 16-bit halves, 64-bit dividends use
// BigInt (division is rare enough that its cost does not matter).

import { signBit, sizeMask, toSigned } from './arithmetic-flags.ts';
import type { OperandBits } from './arithmetic-flags.ts';

export interface WideProduct {
  /** Low and high halves of the double-width product, each `size` bits, unsigned. */
  readonly low: number;
  readonly high: number;
  /** CF = OF: the high half carries information (SDM MUL: high != 0; IMUL: product != sign-extended low). */
  readonly overflow: boolean;
}

const TWO_TO_16 = 0x10000;
const TWO_TO_32 = 0x100000000;

function multiplyUnsigned32(a: number, b: number): { low: number; high: number } {
  const aLow = a & 0xffff;
  const aHigh = a >>> 16;
  const bLow = b & 0xffff;
  const bHigh = b >>> 16;
  const middle = aHigh * bLow + aLow * bHigh; // < 2^33, exact
  const lowSum = aLow * bLow + (middle % TWO_TO_16) * TWO_TO_16; // < 2^33, exact
  const high = aHigh * bHigh + Math.floor(middle / TWO_TO_16) + Math.floor(lowSum / TWO_TO_32);
  return { low: lowSum >>> 0, high: high >>> 0 };
}

function multiply32(a: number, b: number, signed: boolean): { low: number; high: number } {
  const unsigned = multiplyUnsigned32(a, b);
  if (!signed) return unsigned;
  // Two's complement correction: (a - 2^32[a<0]) * (b - 2^32[b<0]) differs from a * b by
  // 2^32 * (b[a<0] + a[b<0]) modulo 2^64, which only touches the high half.
  let high = unsigned.high;
  if ((a & 0x80000000) !== 0) high -= b;
  if ((b & 0x80000000) !== 0) high -= a;
  return { low: unsigned.low, high: high >>> 0 };
}

/** The double-width product of two `size`-bit values, as MUL (unsigned) or IMUL (signed) computes it. */
export function multiplyWide(a: number, b: number, size: OperandBits, signed: boolean): WideProduct {
  let low: number;
  let high: number;
  if (size === 32) {
    ({ low, high } = multiply32(a, b, signed));
  } else {
    const product = signed ? toSigned(a, size) * toSigned(b, size) : a * b;
    low = (product & sizeMask(size)) >>> 0;
    high = (product >>> size) & sizeMask(size);
  }
  const signExtension = (low & signBit(size)) !== 0 ? sizeMask(size) : 0;
  const overflow = signed ? high !== signExtension : high !== 0;
  return { low, high, overflow };
}

export interface Quotient {
  readonly quotient: number;
  readonly remainder: number;
}

/**
 * Divides the double-width value high:low by `divisor`. Returns undefined where the CPU
 * raises #DE: a zero divisor, or a quotient that does not fit `size` bits (signed: the
 * range -2^(size-1) .. 2^(size-1)-1). IDIV truncates toward zero; the remainder takes the
 * dividend's sign.
 */
export function divideWide(high: number, low: number, divisor: number, size: OperandBits, signed: boolean): Quotient | undefined {
  if (divisor === 0) return undefined;
  if (size === 32) return divide64(high, low, divisor, signed);
  const dividendUnsigned = high * 2 ** size + low;
  const dividend = signed ? toSigned(dividendUnsigned >>> 0, (size * 2) as OperandBits) : dividendUnsigned;
  const divisorValue = signed ? toSigned(divisor, size) : divisor;
  const quotient = Math.trunc(dividend / divisorValue);
  const remainder = dividend - quotient * divisorValue;
  if (!fitsQuotient(quotient, size, signed)) return undefined;
  return { quotient: (quotient & sizeMask(size)) >>> 0, remainder: (remainder & sizeMask(size)) >>> 0 };
}

function fitsQuotient(quotient: number, size: OperandBits, signed: boolean): boolean {
  if (!signed) return quotient <= sizeMask(size);
  const limit = 2 ** (size - 1);
  return quotient >= -limit && quotient < limit;
}

function divide64(high: number, low: number, divisor: number, signed: boolean): Quotient | undefined {
  const dividendUnsigned = (BigInt(high) << 32n) | BigInt(low);
  const dividend = signed ? BigInt.asIntN(64, dividendUnsigned) : dividendUnsigned;
  const divisorValue = signed ? BigInt(divisor | 0) : BigInt(divisor);
  const quotient = dividend / divisorValue; // BigInt division truncates toward zero
  const remainder = dividend % divisorValue;
  const fits = signed ? quotient >= -(2n ** 31n) && quotient < 2n ** 31n : quotient < 2n ** 32n;
  if (!fits) return undefined;
  return { quotient: Number(BigInt.asUintN(32, quotient)), remainder: Number(BigInt.asUintN(32, remainder)) };
}
