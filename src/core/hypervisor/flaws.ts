/**
 * Planted flaws: switches that each break exactly one mechanism of the secure profile, named
 * after the real bug class (spec-facts.md, "Real bug classes"). A scenario's `flaws:` list or
 * a `flaw.NAME=on` input turns one on; the fuzzer must find every one.
 */

export const FLAW_INFO = {
  'no-scrub': 'frames a live guest gives back are not scrubbed before their next owner (XSA-245)',
  'stale-iotlb': 'unmapping a page from a device domain skips the IOTLB invalidation',
  'no-context-invalidation': 'deassigning a device skips the context-cache invalidation',
  'skip-ownership-check': "add_to_physmap maps a foreign frame without checking who owns it (Xen's get_page)",
  'sid-mask-wrong': 'interrupt remapping entries are written with a source-id qualifier that ignores the device and function',
  'compat-msi-allowed': 'compatibility-format MSIs pass interrupt remapping (GCMD.CFI set)',
  'double-fetch-descriptor': 'the NIC fetches a tx descriptor twice: it checks one copy and uses the other (XSA-155)',
  'no-key-switch': "a context switch does not load the incoming domain's key into SMM",
  'remap-without-revalidation': 'a gfn given back is unmapped without flushing the TLBs and shadows that cache it',
  'vf-spoofcheck-off': 'the PF driver leaves MAC anti-spoofing off on every VF',
} as const;

export type FlawName = keyof typeof FLAW_INFO;
export const FLAWS = Object.keys(FLAW_INFO) as FlawName[];

/** True when the flaw is planted in this machine (secure-profile mechanisms only read this). */
export function hasFlaw(state: { readonly flaws: readonly string[] }, flaw: FlawName): boolean {
  return state.flaws.includes(flaw);
}
