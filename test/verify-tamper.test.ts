/**
 * verify against damaged and forged recordings. One scenario is recorded once, long enough
 * for several chunks and checkpoints; every case damages its own copy with better-sqlite3
 * and expects `verify` to exit 1 with a report naming where (never exit 3, a crash, and
 * never exit 2: finding damage is verify's job, not bad input).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { CHUNK_EVENTS, GENESIS_HASH, RecordingStore, chunkHash } from '../src/events/store.ts';
import type { Event } from '../src/events/schema.ts';
import { cli, describeResult, loopScenario, parseJsonLines, removeDir, tempDir, writeText, type CliResult } from './helpers/cli.ts';

const EXIT_VERIFY_FAILED = 1;

let root: string;
let recording: string;
let runRow: { id: number; event_count: number; head_hash: Buffer };
let chunks: { first_seq: number; count: number }[];
let checkpointSeqs: number[];

before(async () => {
  root = tempDir('chronovisor-verify-tamper');
  // About 8 events per loop iteration: ~21k events, so 6 chunks of CHUNK_EVENTS and 4 checkpoints.
  writeText(root, 'long.yaml', loopScenario({ seed: 7, times: 2600 }));
  const run = await cli(['run', 'long.yaml', '--out', 'long.db'], root);
  assert.equal(run.code, 0, describeResult(['run', 'long.yaml'], run));
  recording = join(root, 'long.db');
  const db = new Database(recording, { readonly: true });
  runRow = db.prepare('SELECT id, event_count, head_hash FROM runs').get() as typeof runRow;
  chunks = db.prepare('SELECT first_seq, count FROM chunks WHERE run = ? ORDER BY first_seq').all(runRow.id) as typeof chunks;
  checkpointSeqs = (db.prepare('SELECT seq FROM checkpoints WHERE run = ? ORDER BY seq').all(runRow.id) as { seq: number }[]).map((r) => r.seq);
  db.close();
  assert.ok(chunks.length >= 5, `the scenario should span several chunks, got ${chunks.length}`);
  assert.ok(chunks[chunks.length - 1].count < CHUNK_EVENTS, 'the last chunk should be a short one');
  assert.ok(checkpointSeqs.length >= 3, `the scenario should have several checkpoints, got ${checkpointSeqs}`);
  const verify = await cli(['verify', 'long.db'], root);
  assert.equal(verify.code, 0, describeResult(['verify', 'long.db'], verify));
  assert.match(verify.stdout, new RegExp(`^ok +run 1 .*: ${runRow.event_count} events, ${chunks.length} chunks, ${checkpointSeqs.length} checkpoints`, 'm'));
});

after(() => removeDir(root));

/** A copy of the intact recording in a folder of its own (the writer has closed: no WAL). */
function copy(): { dir: string; path: string } {
  const dir = mkdtempSync(join(root, 'case-'));
  const path = join(dir, 'r.db');
  copyFileSync(recording, path);
  return { dir, path };
}

function damage(path: string, edit: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    edit(db);
  } finally {
    db.close();
  }
}

async function verify(dir: string, ...extra: string[]): Promise<CliResult> {
  return cli(['verify', 'r.db', ...extra], dir);
}

/** exit 1 (not 2, not 3), a FAIL report on stdout, each pattern in it, no internal error. */
function assertFails(r: CliResult, ...patterns: RegExp[]): void {
  const what = describeResult(['verify', 'r.db'], r);
  assert.notEqual(r.code, 3, `verify crashed (exit 3, internal error) instead of reporting the damage\n${what}`);
  assert.equal(r.code, EXIT_VERIFY_FAILED, what);
  assert.doesNotMatch(r.stderr, /internal error/, what);
  assert.match(r.stdout, /^FAIL +run 1 /m, what);
  for (const p of patterns) assert.match(r.stdout, p, what);
}

const middle = <T>(list: T[]): T => list[Math.floor(list.length / 2)];

describe('damaged chunks', { concurrency: 2 }, () => {
  // Every chunk, first to last (the short one) included.
  for (let i = 0; i < 6; i++) {
    test(`one byte flipped in the bytes of chunk #${i}: exit 1, the chunk's seq named`, async (t) => {
      if (i >= chunks.length) { t.skip(`only ${chunks.length} chunks`); return; }
      const { dir, path } = copy();
      const seq = chunks[i].first_seq;
      damage(path, (db) => {
        const row = db.prepare('SELECT bytes FROM chunks WHERE run = ? AND first_seq = ?').get(runRow.id, seq) as { bytes: Buffer };
        const bytes = Buffer.from(row.bytes);
        bytes[Math.floor(bytes.length / 2)] ^= 0xff;
        db.prepare('UPDATE chunks SET bytes = ? WHERE run = ? AND first_seq = ?').run(bytes, runRow.id, seq);
      });
      const r = await verify(dir);
      assertFails(r, new RegExp(`chain: chunk at seq ${seq} \\(run 1\\)`), new RegExp(`seq=${seq};`));
    });
  }

  test('a middle chunk deleted: exit 1, "chunk missing" at its seq', async () => {
    const { dir, path } = copy();
    const seq = middle(chunks).first_seq;
    damage(path, (db) => db.prepare('DELETE FROM chunks WHERE run = ? AND first_seq = ?').run(runRow.id, seq));
    const r = await verify(dir);
    assertFails(r, /chunk missing/, new RegExp(`starting at seq ${seq}\\b`), new RegExp(`seq=${seq};`));
  });

  test('truncated: the last chunk deleted: exit 1, the run is truncated', async () => {
    const { dir, path } = copy();
    const last = chunks[chunks.length - 1];
    damage(path, (db) => db.prepare('DELETE FROM chunks WHERE run = ? AND first_seq = ?').run(runRow.id, last.first_seq));
    const r = await verify(dir);
    assertFails(r, /truncated/, new RegExp(`records ${runRow.event_count} events but its chunks hold ${last.first_seq}`));
  });

  test('truncated: the last chunk deleted and runs.event_count lowered to match: exit 1, the head does not match', async () => {
    const { dir, path } = copy();
    const last = chunks[chunks.length - 1];
    damage(path, (db) => {
      db.prepare('DELETE FROM chunks WHERE run = ? AND first_seq = ?').run(runRow.id, last.first_seq);
      db.prepare('UPDATE runs SET event_count = ? WHERE id = ?').run(last.first_seq, runRow.id);
    });
    const r = await verify(dir);
    assertFails(r, /head/, new RegExp(`seq=${last.first_seq};`));
  });

  test('truncated consistently: last chunk deleted, event_count and head_hash rewritten, checkpoints left: exit 1, no crash', async () => {
    // The chain now checks out, but the run still has a checkpoint past its last event.
    const { dir, path } = copy();
    const last = chunks[chunks.length - 1];
    assert.ok(checkpointSeqs[checkpointSeqs.length - 1] > last.first_seq, 'the final checkpoint lies in the deleted chunk');
    damage(path, (db) => {
      const prev = db.prepare('SELECT hash FROM chunks WHERE run = ? AND first_seq < ? ORDER BY first_seq DESC LIMIT 1').get(runRow.id, last.first_seq) as { hash: Buffer };
      db.prepare('DELETE FROM chunks WHERE run = ? AND first_seq = ?').run(runRow.id, last.first_seq);
      db.prepare('UPDATE runs SET event_count = ?, head_hash = ? WHERE id = ?').run(last.first_seq, prev.hash, runRow.id);
    });
    const r = await verify(dir);
    assertFails(r, /checkpoint/);
  });
});

/** The offset just after the only occurrence of `key` as a msgpack fixstr in `blob`. */
function afterKey(blob: Buffer, key: string): number {
  const needle = Buffer.concat([Buffer.from([0xa0 | key.length]), Buffer.from(key)]);
  // The first occurrence is the state's own field: the state's top-level keys come first
  // (nested values, such as a PCI function's `config` in the I/O state, come later).
  const at = blob.indexOf(needle);
  assert.ok(at >= 0, `the checkpoint has no '${key}' key`);
  return at + needle.length;
}

/** The offset of the last byte of the msgpack unsigned integer at `at`. */
function lastByteOfUint(blob: Buffer, at: number): number {
  const type = blob[at];
  if (type < 0x80) return at;
  const widths: Record<number, number> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8 };
  assert.ok(type in widths, `expected an unsigned integer at ${at}, found type byte 0x${type.toString(16)}`);
  return at + widths[type];
}

describe('damaged checkpoints', { concurrency: 2 }, () => {
  const cases: { name: string; offset: (blob: Buffer) => number; xor: number; expect: (seq: number) => RegExp[] }[] = [
    {
      // Still decodes; the state simply differs from the one replay reaches.
      name: 'the low bit of the tick value flipped',
      offset: (blob) => lastByteOfUint(blob, afterKey(blob, 'tick')),
      xor: 0x01,
      expect: (seq) => [new RegExp(`checkpoint: the checkpoint at seq ${seq} differs`), new RegExp(`seq=${seq};`)],
    },
    {
      // The top-level map header: the blob no longer decodes.
      name: 'the first byte (the map header) flipped',
      offset: () => 0,
      xor: 0x01,
      expect: (seq) => [/checkpoint/, new RegExp(`\\b${seq}\\b`)],
    },
    {
      // A byte of the hash naming the scenario blob: it refers to a blob that is not there.
      name: 'a byte of the config blob reference flipped',
      offset: (blob) => {
        const at = afterKey(blob, 'config');
        assert.deepEqual([...blob.subarray(at, at + 2)], [0xc4, 0x20], 'config should be a 32-byte bin');
        return at + 2 + 5;
      },
      xor: 0xff,
      expect: (seq) => [/checkpoint/, new RegExp(`\\b${seq}\\b`)],
    },
  ];

  for (const c of cases) {
    test(`a middle checkpoint with ${c.name}: exit 1 naming its seq, not a crash`, async () => {
      const { dir, path } = copy();
      const seq = checkpointSeqs[1];
      damage(path, (db) => {
        // Checkpoints are stored deflated: damage the state itself, then store it as the store does.
        const row = db.prepare('SELECT state FROM checkpoints WHERE run = ? AND seq = ?').get(runRow.id, seq) as { state: Buffer };
        const state = inflateRawSync(row.state);
        state[c.offset(state)] ^= c.xor;
        db.prepare('UPDATE checkpoints SET state = ? WHERE run = ? AND seq = ?').run(deflateRawSync(state), runRow.id, seq);
      });
      const r = await verify(dir);
      assertFails(r, ...c.expect(seq));
    });
  }
});

/**
 * Rewrites the chunk at `targetSeq` through `edit` (decoded with the store's codec,
 * re-encoded, deflated) and recomputes the hash of it and of every later chunk and the
 * run's head, so the hash chain is consistent again: only re-execution can tell.
 */
function forgeChunk(path: string, targetSeq: number, edit: (events: Event[]) => void): void {
  const store = RecordingStore.open(path);
  try {
    const rows = [...store.chunkRows(runRow.id, 0)];
    const update = store.db.prepare('UPDATE chunks SET hash = ?, bytes = ? WHERE run = ? AND first_seq = ?');
    let prev: Buffer = GENESIS_HASH;
    store.db.transaction(() => {
      for (const row of rows) {
        let raw: Buffer = inflateRawSync(row.bytes);
        let bytes: Buffer = row.bytes;
        if (row.firstSeq === targetSeq) {
          const events = store.codec.decodeChunk(raw);
          edit(events);
          raw = store.codec.encodeChunk(events);
          bytes = deflateRawSync(raw);
        }
        const hash = chunkHash(prev, row.firstSeq, row.count, raw);
        update.run(hash, bytes, runRow.id, row.firstSeq);
        prev = hash;
      }
      store.db.prepare('UPDATE runs SET head_hash = ? WHERE id = ?').run(prev, runRow.id);
    })();
  } finally {
    store.close();
  }
}

describe('forged events with a consistent hash chain: re-execution catches them', { concurrency: 2 }, () => {
  test('control: the same rewrite without a change verifies (the forging itself is sound)', async () => {
    const { dir, path } = copy();
    forgeChunk(path, middle(chunks).first_seq, () => {});
    const r = await verify(dir);
    assert.equal(r.code, 0, describeResult(['verify', 'r.db'], r));
    assert.match(r.stdout, /^ok +run 1 .*hash chain intact/m);
  });

  test('one mem.read value changed in a middle chunk, chain recomputed: exit 1, replay mismatch at that seq', async () => {
    const { dir, path } = copy();
    const target = middle(chunks).first_seq;
    let forgedSeq = -1;
    forgeChunk(path, target, (events) => {
      const index = events.findIndex((e, i) => i >= 100 && e.kind === 'mem.read');
      assert.ok(index >= 0, 'the chunk has a mem.read event');
      const event = events[index] as Extract<Event, { kind: 'mem.read' }>;
      const value = new Uint8Array(event.value);
      value[0] ^= 0xff;
      events[index] = { ...event, value };
      forgedSeq = target + index;
    });
    // The chain really is consistent: the failure below can only come from re-execution.
    const store = RecordingStore.open(path, { readonly: true });
    try {
      let head: Buffer = GENESIS_HASH;
      for (const row of store.chunkRows(runRow.id)) {
        head = chunkHash(head, row.firstSeq, row.count, inflateRawSync(row.bytes));
        assert.deepEqual(head, row.hash, `the link of the chunk at seq ${row.firstSeq}`);
      }
      assert.deepEqual(head, store.run(runRow.id).headHash);
    } finally {
      store.close();
    }
    const r = await verify(dir);
    assertFails(r, new RegExp(`^ +replay: .*\\bseq ${forgedSeq}\\b`, 'm'), /^ +recorded: mem\.read/m, /^ +replayed: mem\.read/m, new RegExp(`seq=${forgedSeq};`));
    const json = await verify(dir, '--json');
    assert.equal(json.code, EXIT_VERIFY_FAILED, describeResult(['verify', '--json'], json));
    const [report] = parseJsonLines<{ ok: boolean; mismatch: { check: string; seq: number } }>(json.stdout);
    assert.equal(report.ok, false);
    assert.equal(report.mismatch.check, 'replay');
    assert.equal(report.mismatch.seq, forgedSeq);
  });
});

describe('damaged pages and edited run records', { concurrency: 2 }, () => {
  test('one byte flipped in one stored page: exit 1, the checkpoint and the page named', async () => {
    const { dir, path } = copy();
    let name = '';
    damage(path, (db) => {
      // A memory page (4 KiB), not a small blob: the flip hides in data nothing decodes.
      const row = db.prepare('SELECT hash, bytes FROM pages WHERE length(bytes) = 4096 LIMIT 1').get() as { hash: Buffer; bytes: Buffer };
      const bytes = Buffer.from(row.bytes);
      bytes[1234] ^= 0x01;
      db.prepare('UPDATE pages SET bytes = ? WHERE hash = ?').run(bytes, row.hash);
      name = row.hash.toString('hex').slice(0, 16);
    });
    const r = await verify(dir);
    assertFails(r, /^ +checkpoint: the checkpoint at seq \d+ cannot be loaded: page /m, new RegExp(`page ${name} is damaged: its bytes no longer hash to its name`));
  });

  test('runs.seed edited: exit 1, the seed the run booted with named', async () => {
    const { dir, path } = copy();
    damage(path, (db) => db.prepare("UPDATE runs SET seed = '8' WHERE id = ?").run(runRow.id));
    const r = await verify(dir);
    assertFails(r, /^ +run: the run's record says seed "8", but it booted with seed "7": its seed column was changed/m);
  });

  test('a run record whose summary is not JSON: verify exits 1 naming the column; runs lists it as damaged and exits 1', async () => {
    const { dir, path } = copy();
    damage(path, (db) => db.prepare("UPDATE runs SET summary = '{\"violations\": ' WHERE id = ?").run(runRow.id));
    assertFails(await verify(dir), /^ +run: its record's summary holds .* not a JSON object/m);
    const runs = await cli(['runs', 'r.db'], dir);
    assert.equal(runs.code, 1, describeResult(['runs', 'r.db'], runs));
    assert.match(runs.stdout, /^ +1 +\(its record is damaged\)/m);
    assert.match(runs.stderr, /^chronovisor: r\.db: run 1 is damaged: its record's summary holds .*'chronovisor verify r\.db --run 1'/m);
    assert.doesNotMatch(runs.stderr, /internal error/);
  });

  describe('a fork', () => {
    let forked: string;
    before(async () => {
      const { dir } = copy();
      const r = await cli(['fork', 'r.db', '--run', '1', '--at', String(chunks[3].first_seq + 100), '--set', 'quantum=2', '--events', '3000'], dir);
      assert.equal(r.code, 0, describeResult(['fork'], r));
      forked = join(dir, 'r.db');
      assert.equal((await cli(['verify', 'r.db', '--run', '2'], dir)).code, 0, 'the fork verifies before it is edited');
    });

    const cases: [string, string, RegExp][] = [
      ['its fork seq moved by one step', 'UPDATE runs SET fork_seq = fork_seq + 3 WHERE id = 2', /^ +run: the fork has no checkpoint of its own at its fork seq \d+: its fork seq was changed/m],
      ['the change its record lists edited', `UPDATE runs SET config = '{"set":{"quantum":"5"}}' WHERE id = 2`, /^ +run: the fork's record lists quantum=5, but its input events at seq \d+ set quantum=2: its config was changed/m],
      ['its parent made itself', 'UPDATE runs SET parent_run = 2 WHERE id = 2', /^ +run: its record's parent run 2, fork seq/m],
    ];
    for (const [what, sql, expected] of cases) {
      test(`${what}: exit 1, named`, async () => {
        const dir = mkdtempSync(join(root, 'case-'));
        copyFileSync(forked, join(dir, 'r.db'));
        damage(join(dir, 'r.db'), (db) => db.prepare(sql).run());
        const r = await verify(dir, '--run', '2');
        const all = describeResult(['verify', '--run', '2'], r);
        assert.equal(r.code, EXIT_VERIFY_FAILED, all);
        assert.doesNotMatch(r.stderr, /internal error/, all);
        assert.match(r.stdout, /^FAIL +run 2\b/m, all);
        assert.match(r.stdout, expected, all);
      });
    }
  });
});
