/**
 * The project's own mutation suite: small source changes a hypervisor developer could
 * plausibly make, none of them the planted flaws (src/core/hypervisor/flaws.ts) and none
 * written to fit an invariant. `npm run mutants` applies each, alone, to a temporary copy of
 * the tree and fuzzes it for a fixed time in each mode; a test checks that every one still
 * applies to the sources, so a refactor that moves the text fails loudly instead of
 * silently testing nothing.
 */

export interface Mutation {
  name: string;
  /** Path from the repository's root. */
  file: string;
  /** The exact text, found exactly once in the file. */
  text: string;
  replacement: string;
  /** What the developer meant, and what the change does instead. */
  intent: string;
}

export const MUTATIONS: readonly Mutation[] = [
  {
    name: 'destroy-forgets-key-revoke',
    file: 'src/core/hypervisor/domains.ts',
    text: "  if (host.state.keyTable.has(dom)) host.emit('smm.key.revoke', { dom });\n",
    replacement: '',
    intent: 'a dying domain\'s SMM key is revoked; the destroy path forgets it (a revoke missing on one path)',
  },
  {
    name: 'destroy-keeps-iommu-domain',
    file: 'src/core/hypervisor/domains.ts',
    text: '  if (host.state.io.xenVtd.domains.has(dom)) vtdDestroyDomain(host, dom);\n',
    replacement: '',
    intent: 'a dying domain\'s IOMMU domain is torn down; the destroy path only detaches the NIC',
  },
  {
    name: 'destroy-skips-scrub',
    file: 'src/core/hypervisor/domains.ts',
    text: 'freeFrames(host, dom, mfns, true);',
    replacement: 'freeFrames(host, dom, mfns, false);',
    intent: 'a dying domain\'s frames are scrubbed before reuse; the flag is the other way round',
  },
  {
    name: 'destroy-frees-before-flush',
    file: 'src/core/hypervisor/domains.ts',
    text: '  flushTranslations(host, dom);\n  freeFrames(host, dom, mfns, true);',
    replacement: '  freeFrames(host, dom, mfns, true);\n  flushTranslations(host, dom);',
    intent: 'cached translations are flushed before the frames go back to the heap; the two calls are swapped',
  },
  {
    name: 'unmap-keeps-iommu-leaf',
    file: 'src/core/hypervisor/memory/memory-ops.ts',
    text: '    if (host.state.io.xenVtd.domains.has(dom)) vtdUnmapPage(host, dom, gfn);\n',
    replacement: '',
    intent: 'a gfn given back leaves the p2m, the EPT and the device\'s tables; the IOMMU mirror is forgotten',
  },
  {
    name: 'unmap-keeps-ept-leaf',
    file: 'src/core/hypervisor/memory/memory-ops.ts',
    text: "    if (ept) host.emit('ept.update', { dom, gfn, mfn: NO_FRAME, bits: 0 });\n",
    replacement: '',
    intent: 'a gfn given back leaves the EPT too; only the p2m (and the device) are updated',
  },
  {
    name: 'populate-overlap-off-by-one',
    file: 'src/core/hypervisor/memory/memory-ops.ts',
    text: 'for (let g = gfn; g < gfn + count; g++) if (domain.p2m.has(g)) return EEXIST;',
    replacement: 'for (let g = gfn; g < gfn + count - 1; g++) if (domain.p2m.has(g)) return EEXIST;',
    intent: 'populate_physmap refuses a range overlapping a mapped gfn; the last gfn of the range is not checked',
  },
  {
    name: 'decrease-duplicate-gfn',
    file: 'src/core/hypervisor/memory/memory-ops.ts',
    text: 'if (!p2m.has(gfn) || seen.has(gfn)) break;',
    replacement: 'if (!p2m.has(gfn)) break;',
    intent: 'decrease_reservation stops at a gfn named twice in one call; the duplicate is released twice',
  },
  {
    name: 'iommu-map-gfn-for-mfn',
    file: 'src/core/hypervisor/vtd-driver/iommu-domains.ts',
    text: 'hpa: mfn * PAGE_SIZE, read: true, write: true',
    replacement: 'hpa: gfn * PAGE_SIZE, read: true, write: true',
    intent: 'the device\'s leaf maps iova gfn to the frame mfn; it is written with gfn (its vtd.op and every other event look right)',
  },
  {
    name: 'iommu-unmap-invalidates-next-page',
    file: 'src/core/hypervisor/vtd-driver/iommu-domains.ts',
    text: "if (!hasFlaw(host.state, 'stale-iotlb')) invalidatePage(op, xen, domain.did, iova);",
    replacement: "if (!hasFlaw(host.state, 'stale-iotlb')) invalidatePage(op, xen, domain.did, iova + PAGE_SIZE);",
    intent: 'the page-selective invalidation names the page unmapped; it names the end of it (an off-by-one range)',
  },
  {
    name: 'deassign-keeps-irtes',
    file: 'src/core/hypervisor/vtd-driver/iommu-domains.ts',
    text: "  wait.emit('wait', bdf, did);\n  releaseIrtes(host, bdf);",
    replacement: "  wait.emit('wait', bdf, did);",
    intent: 'taking a device away clears its interrupt remapping entries; the deassign path forgets them',
  },
  {
    name: 'irte-without-source-validation',
    file: 'src/core/hypervisor/vtd-driver/interrupt-remapping.ts',
    text: 'vtdIrte({ vector, destination: vcpu, svt: 1, sq, sid: bdf })',
    replacement: 'vtdIrte({ vector, destination: vcpu, svt: 0, sq, sid: bdf })',
    intent: 'an IRTE verifies the requester id (SVT = 1); SVT 0 is written, so any device passes',
  },
  {
    name: 'shadow-flush-keeps-kept-shadows',
    file: 'src/core/hypervisor/vmx/translation-caches.ts',
    text: '      x86.shadow.clear();\n      x86.shadowCache.clear();',
    replacement: '      x86.shadow.clear();',
    intent: 'a full shadow flush drops the current shadow and the ones kept for other CR3s; the kept ones stay (the event says flush)',
  },
  {
    name: 'shadow-flush-on-wrong-paging',
    file: 'src/core/hypervisor/memory/memory-ops.ts',
    text: "if (domain.paging === 'shadow') host.emit('shadow.sync',",
    replacement: "if (domain.paging === 'ept') host.emit('shadow.sync',",
    intent: 'the shadows of a shadow-paged guest are flushed when it gives frames back; the test is on the other paging mode',
  },
  {
    name: 'bar-window-mapped-readable',
    file: 'src/core/hypervisor/domains.ts',
    text: "host.emit('ept.update', { dom, gfn, mfn: 0, bits: EPT_WRITE });",
    replacement: "host.emit('ept.update', { dom, gfn, mfn: 0, bits: EPT_WRITE | 1 });",
    intent: 'the BAR window is a misconfigured entry (write only) so every access exits; it is made readable like RAM',
  },
  {
    name: 'switch-mac-lookup-across-vlans',
    file: 'src/core/hardware/nic/switch.ts',
    text: 'const target = sameVlan.find((v) => v.mac === header.dst);',
    replacement: 'const target = ports.find((v) => v.mac === header.dst && v.vf !== from);',
    intent: 'a unicast goes to the port with that MAC in the frame\'s VLAN; the MAC is looked up across all VLANs',
  },
  {
    name: 'irt-bound-inclusive',
    file: 'src/core/hardware/iommu/vtd.ts',
    text: 'if (index >= 2 ** ((state.regs.irtaActive & VTD_IRTA_S_MASK) + 1))',
    replacement: 'if (index > 2 ** ((state.regs.irtaActive & VTD_IRTA_S_MASK) + 1))',
    intent: 'an interrupt index at or beyond the table\'s size faults (0x24); the bound lets the entry just past the table be read',
  },
];

/** The file's text with the mutation applied; throws, naming it, unless its text is there exactly once. */
export function applyMutation(source: string, m: Mutation): string {
  const at = source.indexOf(m.text);
  if (at < 0) throw new Error(`mutation ${m.name}: its text is no longer in ${m.file} (the code moved or changed): restate the mutation`);
  if (source.indexOf(m.text, at + 1) >= 0) throw new Error(`mutation ${m.name}: its text is in ${m.file} more than once: make it specific`);
  return source.slice(0, at) + m.replacement + source.slice(at + m.text.length);
}

/** One mutant fuzzed in one mode: found after so many seconds and cases, with this finding, or not found. */
export interface MutantOutcome {
  name: string;
  mode: 'random' | 'guided';
  found: boolean;
  seconds: number | null;
  /** Cases run until found (or in all, when not found); null for a crash. */
  cases: number | null;
  finding: string | null;
}

export interface ModeSummary {
  mode: 'random' | 'guided';
  killed: number;
  total: number;
  /** Median seconds to find over the mutants this mode killed. */
  median: number | null;
  /** Median over the mutants both modes killed (the comparison the goal is stated on). */
  medianWhereBoth: number | null;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Kill rate and medians per mode. */
export function summarize(outcomes: readonly MutantOutcome[]): ModeSummary[] {
  const modes = [...new Set(outcomes.map((o) => o.mode))];
  const killedBy = (mode: string): Map<string, number> =>
    new Map(outcomes.filter((o) => o.mode === mode && o.found).map((o) => [o.name, o.seconds ?? 0]));
  const both = modes.length > 1 ? [...killedBy(modes[0]).keys()].filter((name) => modes.every((mode) => killedBy(mode).has(name))) : [];
  return modes.map((mode) => {
    const killed = killedBy(mode);
    return {
      mode,
      killed: killed.size,
      total: outcomes.filter((o) => o.mode === mode).length,
      median: median([...killed.values()]),
      medianWhereBoth: modes.length > 1 ? median(both.map((name) => killed.get(name)!)) : null,
    };
  });
}
