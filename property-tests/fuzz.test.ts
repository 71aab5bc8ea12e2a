/**
 * The fuzzer's laws, and the fuzzer at work:
 * - a fuzz case (a machine with devices and adversarial actions) is a recording like any
 *   other: same case, same head hash; verify re-executes it; seek equals fold;
 * - the secure profile holds against every adversarial action (fc.commands, with the model);
 * - vanilla leaks what the paper predicts;
 * - every planted flaw is found within a bounded number of cases (fixed seed, so the bound
 *   is a fact about this code, not luck), shrunk, and its recording shows the violation.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { EventOf } from '../src/events/schema.ts';
import { FLAWS, type FlawName } from '../src/core/hypervisor/flaws.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { verifyRun } from '../src/replay/verify.ts';
import { actionArbitrary } from '../src/fuzz/actions.ts';
import { runCampaign } from '../src/fuzz/campaign.ts';
import { caseShapeArbitrary, caseYaml } from '../src/fuzz/case.ts';
import { TempDir, foldDigests, record, runs } from './helpers.ts';

const dir = new TempDir();
after(() => dir.cleanup());

const describeReport = (report: ReturnType<typeof verifyRun>): string =>
  report.ok ? 'ok' : `${report.mismatch?.check} at seq ${report.mismatch?.seq}: ${report.mismatch?.message}`;

test('a fuzz case records twice to the same head hash, verifies, and seeking equals folding', () => {
  const cases = fc.record({
    shape: caseShapeArbitrary,
    profile: fc.constantFrom('secure' as const, 'vanilla' as const),
    actions: fc.array(actionArbitrary(), { maxLength: 6 }),
    at: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 4 }),
  });
  fc.assert(fc.property(cases, ({ shape, profile, actions, at }) => {
    const yaml = caseYaml(shape, profile, [], actions);
    const store = dir.store();
    const first = record(store, yaml, { checkpointEvery: 997, maxEvents: 30_000 });
    const again = record(dir.store(), yaml, { checkpointEvery: 5000, maxEvents: 30_000 });
    assert.equal(again.row.headHash.toString('hex'), first.row.headHash.toString('hex'), 'same case, same hash chain');
    const report = verifyRun(store, first.row);
    assert.ok(report.ok, describeReport(report));
    const positions = at.map((f) => Math.floor(f * first.row.eventCount));
    const folded = foldDigests(store, first.row, positions);
    const timeline = new Timeline(store, first.row);
    for (const seq of positions) assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), folded.get(seq), `seek to ${seq}`);
  }), { numRuns: runs(15) });
});

test('the secure profile holds against hostile guests, devices, dom0 and the wire (model-based)', () => {
  const result = runCampaign({ profile: 'secure', flaws: [], seed: 2011, runs: runs(300) });
  assert.equal(result.counterexample, undefined, `${result.counterexample?.finding}\n${result.counterexample?.yaml}`);
  // Not vacuous: the campaign reached every device path and VT-d refused DMA and interrupts.
  for (const kind of ['dma.request', 'msi', 'net.frame', 'siom.buffer', 'vm.exit', 'vtd.op', 'pci.cfg', 'pci.mmio']) {
    assert.ok(result.coverage.kinds.has(kind), `no ${kind} in ${result.runs} cases`);
  }
  for (const reason of [0x2, 0x6, 0x25, 0x26]) assert.ok(result.coverage.faultReasons.has(reason), `VT-d fault 0x${reason.toString(16)} never seen`);
});

test('vanilla leaks: the fuzzer finds what the paper predicts', () => {
  const result = runCampaign({ profile: 'vanilla', flaws: [], seed: 2011, runs: 500 });
  const c = result.counterexample;
  assert.ok(c !== undefined, `nothing found in ${result.runs} vanilla cases`);
  assert.match(c.finding, /^(dom0-no-plaintext|canary-confined|scrub-between-owners|dma-confined|irq-confined|net-isolation|iommu-table-confined|vlan-confined):/);
});

/** What each planted flaw breaks, as the oracle that catches it names it. */
const EXPECTED: Record<FlawName, RegExp> = {
  'no-scrub': /^scrub-between-owners:/,
  'stale-iotlb': /^no-stale-translation: .*IOTLB/,
  'no-context-invalidation': /^no-stale-translation: the context-cache entry|context-cache entry/,
  'skip-ownership-check': /^single-owner:/,
  // The IRTE is wrong as soon as Xen writes it: the oracle over the table says so before any MSI.
  'sid-mask-wrong': /^iommu-table-confined: interrupt remapping entry .* passes the source-id check/,
  'compat-msi-allowed': /^irq-confined:/,
  'double-fetch-descriptor': /^net-isolation: .* sent a frame as/,
  'no-key-switch': /^frame-key-owner:/,
  'remap-without-revalidation': /^no-stale-translation: .*TLB/,
  'vf-spoofcheck-off': /^net-isolation: .* sent a frame as/,
};
/** Cases a flaw may take to be found with the seed below (measured; double-fetch is the rarest). */
const FLAW_RUN_BOUND = 3000;
/** The campaign seed of the flaw tests. Other seeds find every flaw too, some later: double-fetch-descriptor took 700 to 7,300 cases over seeds 1 to 5. */
const FLAW_SEED = 3;

for (const flaw of FLAWS) {
  test(`planted flaw ${flaw}: found within ${FLAW_RUN_BOUND} cases, shrunk, and its recording replays the violation`, () => {
    const result = runCampaign({ profile: 'secure', flaws: [flaw], seed: FLAW_SEED, runs: FLAW_RUN_BOUND });
    const c = result.counterexample;
    assert.ok(c !== undefined, `${flaw} not found in ${result.runs} cases`);
    assert.match(c.finding, EXPECTED[flaw]);
    assert.ok(c.actions.length <= 6, `the shrunk counterexample still has ${c.actions.length} actions`);
    const store = dir.store();
    const { row } = record(store, c.yaml, { maxEvents: 40_000 });
    assert.ok(verifyRun(store, row).ok);
    const violations = [...new Timeline(store, row).iterate(0, row.eventCount)]
      .map(([, e]) => e).filter((e): e is EventOf<'violation'> => e.kind === 'violation');
    // The model's own findings (a dead domain keeping something) are not invariants; the rest are recorded.
    if (!c.finding.startsWith('dead domain')) assert.ok(violations.some((v) => c.finding.startsWith(`${v.invariant}:`)), `the recording shows no ${c.finding.split(':')[0]}`);
    store.close();
  });
}
