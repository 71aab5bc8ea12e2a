/**
 * `chronovisor export pcap`: a recording written through the store API with synthetic
 * net.frame events (frames built by ethernet.ts) is exported, and the file is parsed back:
 * the global header, one record per selected frame, timestamps from the machine's tick,
 * lengths and bytes. Bad arguments exit 2 and leave the recording and --out untouched;
 * tcpdump reads the file when it is installed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeEvent } from '../src/events/make-event.ts';
import type { Event } from '../src/events/schema.ts';
import { GENESIS_HASH, RecordingStore, RunWriter } from '../src/events/store.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { dehydrate } from '../src/core/machine/snapshot.ts';
import { initialState } from '../src/core/machine/state.ts';
import { buildFrame } from '../src/core/hardware/nic/ethernet.ts';
import { LINKTYPE_ETHERNET, PCAP_MAGIC, PCAP_SNAPLEN, parsePoints } from '../src/cli/export.ts';
import { RUN_FORMATS } from '../src/replay/formats.ts';
import { BIN, childEnv, cli, describeResult, fingerprint, listing, removeDir, tempDir, type CliResult } from './helpers/cli.ts';

const SCENARIO = `seed: 7
machine: { memoryMiB: 4, pcpus: 1, profile: secure }
dom0: { memoryKiB: 256 }
domains:
  - name: alice
    memoryKiB: 64
    guest: { ops: [ yield ] }
`;

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';
const UDP = { src: '10.0.0.1', dst: '10.0.0.2', srcPort: 4000, dstPort: 7000 };

/** The frames, by point, in recording order: [at, verdict, frame, tick at the event]. */
const FRAMES: [string, string, Uint8Array, number][] = [
  ['vf1.tx', 'ok', buildFrame({ dst: B, src: A, udp: UDP, payload: enc('query') }), 3],
  ['switch', 'ok', buildFrame({ dst: B, src: A, vlan: 10, udp: UDP, payload: enc('query') }), 3],
  ['wire.out', 'ok', buildFrame({ dst: B, src: A, udp: UDP, payload: enc('query') }), 3],
  ['wire.in', 'ok', buildFrame({ dst: A, src: B, payload: enc('raw reply, no IP'.repeat(4)) }), 1_000_005],
  ['switch', 'spoofed source MAC', buildFrame({ dst: B, src: '02:00:00:00:00:99', payload: enc('spoof') }), 1_000_005],
  ['siom.rx', 'ok', buildFrame({ dst: A, src: B, payload: enc('to alice') }), 1_000_009],
];

/** boot, then idle jumps of the clock between the frames (one pCPU: a jump is `ticks`). */
function events(): Event[] {
  const list: Event[] = [makeEvent('machine.boot', { profile: 'secure', frames: 1024, pcpus: 1, seed: '7' })];
  let tick = 0;
  for (const [at, verdict, frame, when] of FRAMES) {
    if (when > tick) list.push(makeEvent('sched.idle', { pcpu: 0, ticks: when - tick }));
    tick = when;
    list.push(makeEvent('net.frame', { at, dom: at === 'wire.in' ? -1 : 1, vlan: at === 'switch' ? 10 : 0, verdict, frame }));
  }
  list.push(makeEvent('machine.halt', { reason: 'test' }));
  return list;
}

/** A recording with one run holding `events()`, checkpointed at 0 and (a second run) midway. */
function writeRecording(path: string): void {
  const config = parseScenario(SCENARIO, 'export.yaml');
  const store = RecordingStore.create(path, 'test');
  try {
    for (const [name, checkpointAt] of [['frames', 0], ['frames-checkpointed', 4]] as const) {
      const run = store.createRun({
        name, parentRun: null, forkSeq: null, baseSeq: 0, seed: '7', scenario: SCENARIO, scenarioPath: 'export.yaml',
        config: '{}', formats: RUN_FORMATS, simVersion: 'test', headHash: GENESIS_HASH, writerPid: process.pid,
      });
      const writer = new RunWriter(store, run, 0, GENESIS_HASH);
      const state = initialState(config);
      const all = events();
      const checkpoint = (seq: number): void => { const { bytes, blobs } = dehydrate(state); writer.checkpoint(seq, bytes, blobs); };
      checkpoint(0);
      all.forEach((event, seq) => {
        if (seq === checkpointAt && seq > 0) checkpoint(seq);
        writer.append([event]);
        evolve(state, event);
      });
      writer.flush();
      store.finishRun(run, 'complete', '{}');
    }
  } finally {
    store.close();
  }
}

interface PcapRecord { sec: number; usec: number; incl: number; orig: number; bytes: Buffer }

function parsePcap(file: Buffer): { header: { magic: number; major: number; minor: number; zone: number; sigfigs: number; snaplen: number; linktype: number }; records: PcapRecord[] } {
  const header = {
    magic: file.readUInt32LE(0), major: file.readUInt16LE(4), minor: file.readUInt16LE(6), zone: file.readInt32LE(8),
    sigfigs: file.readUInt32LE(12), snaplen: file.readUInt32LE(16), linktype: file.readUInt32LE(20),
  };
  const records: PcapRecord[] = [];
  for (let at = 24; at < file.length;) {
    const incl = file.readUInt32LE(at + 8);
    records.push({ sec: file.readUInt32LE(at), usec: file.readUInt32LE(at + 4), incl, orig: file.readUInt32LE(at + 12), bytes: file.subarray(at + 16, at + 16 + incl) });
    at += 16 + incl;
    assert.ok(at <= file.length, 'a record runs past the end of the file');
  }
  return { header, records };
}

let dir: string;
let db: string;

before(() => {
  dir = tempDir('chronovisor-export');
  db = join(dir, 'frames.db');
  writeRecording(db);
});
after(() => removeDir(dir));

async function exportOk(args: string[]): Promise<CliResult> {
  const all = ['export', 'pcap', 'frames.db', ...args];
  const r = await cli(all, dir);
  assert.equal(r.code, 0, describeResult(all, r));
  return r;
}

function assertRecords(path: string, expected: typeof FRAMES): void {
  const { header, records } = parsePcap(readFileSync(path));
  assert.deepEqual(header, { magic: PCAP_MAGIC, major: 2, minor: 4, zone: 0, sigfigs: 0, snaplen: PCAP_SNAPLEN, linktype: LINKTYPE_ETHERNET });
  assert.equal(records.length, expected.length);
  records.forEach((r, i) => {
    const [at, , frame, tick] = expected[i];
    assert.equal(r.sec * 1_000_000 + r.usec, tick, `record ${i} (${at}): timestamp is the tick as microseconds`);
    assert.equal(r.incl, frame.length, `record ${i} (${at}): captured length`);
    assert.equal(r.orig, frame.length, `record ${i} (${at}): original length`);
    assert.deepEqual(new Uint8Array(r.bytes), frame, `record ${i} (${at}): bytes`);
  });
}

test('default points: the switch and the wire, dropped frames left out, counts per point', async () => {
  const r = await exportOk(['--run', 'frames', '--out', 'wire.pcap']);
  assertRecords(join(dir, 'wire.pcap'), FRAMES.filter(([at, verdict]) => ['switch', 'wire.in', 'wire.out'].includes(at) && verdict === 'ok'));
  assert.equal(r.stdout, '', 'messages go to stderr: the data may be going to stdout');
  assert.match(r.stderr, /^wrote 3 frames to wire\.pcap \(run 1 frames; timestamps: the machine's tick/);
  assert.match(r.stderr, /\n {2}switch +1 \(1 dropped left out\)\n {2}wire\.in +1\n {2}wire\.out +1\n/);
  assert.match(r.stderr, /left out 1 dropped frame; add --dropped/);
  assert.deepEqual(listing(dir, true), ['frames.db', 'wire.pcap'], 'no temporary file is left behind');
});

test('--at all --dropped: every frame; a checkpoint midway gives the same timestamps', async () => {
  for (const run of ['frames', 'frames-checkpointed']) {
    const r = await exportOk(['--run', run, '--out', `all-${run}.pcap`, '--at', 'all', '--dropped']);
    assertRecords(join(dir, `all-${run}.pcap`), FRAMES);
    assert.match(r.stderr, /wrote 6 frames/);
    assert.match(r.stderr, /switch +2 \(1 dropped\)/);
  }
});

test('--at a list of points, in any order', async () => {
  await exportOk(['--out', 'vf.pcap', '--at', 'siom.rx,vf1.tx']);
  assertRecords(join(dir, 'vf.pcap'), FRAMES.filter(([at]) => at === 'vf1.tx' || at === 'siom.rx'));
});

test('an existing --out is kept unless --force; the recording is never a target', async () => {
  const target = join(dir, 'keep.pcap');
  writeFileSync(target, 'precious');
  const before = fingerprint(db);
  for (const args of [['--out', 'keep.pcap'], ['--out', 'frames.db', '--force'], ['--out', 'frames.db-wal', '--force'], ['--out', 'nowhere/x.pcap'], ['--out', 'x.pcap', '--at', 'vf0.tx,bogus'], ['--out', 'x.pcap', '--run', 'nope']]) {
    const all = ['export', 'pcap', 'frames.db', ...args];
    const r = await cli(all, dir);
    assert.equal(r.code, 2, describeResult(all, r));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^chronovisor: .*(--out|--at|--run|run)/, describeResult(all, r));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal(readFileSync(target, 'utf8'), 'precious');
  assert.deepEqual(fingerprint(db), before, 'the recording is untouched');
  assert.ok(!existsSync(join(dir, 'x.pcap')));
  await exportOk(['--out', 'keep.pcap', '--force']);
  assert.equal(parsePcap(readFileSync(target)).records.length, 3);
});

test('points: defaults, all, a list; unknown points are refused with the list', () => {
  assert.deepEqual(parsePoints(undefined), ['switch', 'wire.in', 'wire.out']);
  assert.equal(parsePoints('all'), undefined);
  assert.deepEqual(parsePoints('vf1.tx, siom.tx,vf1.tx'), ['vf1.tx', 'siom.tx']);
  assert.throws(() => parsePoints('vf1.tx,wire'), /--at wire: no such point; points: vfN\.tx/);
  assert.throws(() => parsePoints(','), /--at ",": expected a comma list/);
});

test('tcpdump reads the file', { skip: spawnSync('tcpdump', ['--version']).error ? 'tcpdump is not installed' : false }, async () => {
  await exportOk(['--out', 'tcpdump.pcap', '--at', 'all', '--dropped']);
  const r = spawnSync('tcpdump', ['-nn', '-e', '-tt', '-r', join(dir, 'tcpdump.pcap')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // One line per frame; tcpdump adds indented hex lines for payloads it does not decode.
  const lines = r.stdout.split('\n').filter((l) => /^\d/.test(l));
  assert.equal(lines.length, FRAMES.length, r.stdout);
  assert.match(lines[0], /^0\.000003 02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 .* 10\.0\.0\.1\.4000 > 10\.0\.0\.2\.7000: /);
  assert.match(lines[1], /vlan 10/);
  assert.match(lines[3], /^1\.000005 02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype Unknown \(0x88b5\)/);
});

/** Runs the CLI with its stdout kept as bytes (a pcap is binary). */
function cliBytes(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env: childEnv() });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

test('--out - writes the capture to standard output, the report to stderr', () => {
  const r = cliBytes(['export', 'pcap', 'frames.db', '--run', 'frames', '--out', '-', '--at', 'all', '--dropped']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^wrote 6 frames to standard output/);
  const path = join(dir, 'stdout.pcap');
  writeFileSync(path, r.stdout);
  assertRecords(path, FRAMES);
  assert.deepEqual(listing(dir, true).filter((n) => n.startsWith('.')), [], 'no temporary file');
});

test('--out a FIFO: written in place (no --force needed), still a FIFO afterwards, the reader gets the capture', { skip: spawnSync('mkfifo', ['--version']).error ? 'mkfifo is not installed' : false }, async () => {
  const fifo = join(dir, 'capture.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const copy = join(dir, 'from-fifo.pcap');
  // The reader: a shell copying the FIFO to a file (the writer's open waits for it).
  const reader = spawn('sh', ['-c', `cat "${fifo}" > "${copy}"`]);
  const readerDone = new Promise<number | null>((done) => reader.on('close', done));
  for (const force of [[], ['--force']]) {
    const r = await cli(['export', 'pcap', 'frames.db', '--run', 'frames', '--out', fifo, '--at', 'all', '--dropped', ...force], dir);
    assert.equal(r.code, 0, describeResult(['export', 'pcap', '--out', fifo], r));
    assert.ok(statSync(fifo).isFIFO(), 'the FIFO is still a FIFO, not replaced by a file');
    if (force.length === 0) {
      assert.equal(await readerDone, 0);
      assertRecords(copy, FRAMES);
      // The second round (--force) needs a reader too.
      spawn('sh', ['-c', `cat "${fifo}" > /dev/null`]);
    }
  }
  assert.deepEqual(listing(dir, true).filter((n) => n.startsWith('.')), [], 'no temporary file');
});

test('--out - piped into tcpdump -r -', { skip: spawnSync('tcpdump', ['--version']).error ? 'tcpdump is not installed' : false }, () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" export pcap frames.db --run frames --out - --at all --dropped | tcpdump -nn -r -`], { cwd: dir, env: childEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.split('\n').filter((l) => /^\d/.test(l)).length, FRAMES.length, r.stdout);
});
