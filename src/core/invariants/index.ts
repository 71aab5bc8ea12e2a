import { canaryConfined } from './canary-confined.ts';
import { dom0NoPlaintext } from './dom0-no-plaintext.ts';
import { noAliasing } from './no-aliasing.ts';
import { scrubBetweenOwners } from './scrub-between-owners.ts';
import { singleOwner } from './single-owner.ts';
import type { InvariantChecker } from './types.ts';

export const INVARIANT_CHECKERS: readonly InvariantChecker[] = [
  singleOwner, noAliasing, scrubBetweenOwners, canaryConfined, dom0NoPlaintext,
];
export type { Breach, InvariantChecker } from './types.ts';
