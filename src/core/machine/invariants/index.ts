import { canaryConfined } from './canary-confined.ts';
import { dmaConfined } from './dma-confined.ts';
import { dom0NoPlaintext } from './dom0-no-plaintext.ts';
import { frameKeyOwner } from './frame-key-owner.ts';
import { irqConfined } from './irq-confined.ts';
import { netIsolation } from './net-isolation.ts';
import { noAliasing } from './no-aliasing.ts';
import { noStaleTranslation } from './no-stale-translation.ts';
import { scrubBetweenOwners } from './scrub-between-owners.ts';
import { singleOwner } from './single-owner.ts';
import type { InvariantChecker } from './types.ts';

export const INVARIANT_CHECKERS: readonly InvariantChecker[] = [
  singleOwner, noAliasing, scrubBetweenOwners, canaryConfined, dom0NoPlaintext,
  dmaConfined, noStaleTranslation, irqConfined, netIsolation, frameKeyOwner,
];
export type { Breach, InvariantChecker } from './types.ts';
