#!/usr/bin/env node
/**
 * Compiles src/ into dist/ with the same layout, one .js per .ts/.tsx with its imports
 * renamed, so that `chronovisor` runs without the TypeScript loader: a command starts in
 * about half the time and each thread (the store's, verify's and fuzz's workers) keeps
 * ~45 MB less. Paths a module finds beside itself (package.json, recordings/, the worker
 * boot files) stay where they were relative to it. Run by `npm ci` (prepare) and `npm test`;
 * bin/chronovisor runs the sources through tsx instead while any of them is newer than the
 * build. The stamp is written last, so an interrupted build is never taken as current.
 */
import { build } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const STAGING = join(ROOT, `dist.building-${process.pid}`);
const STAMP = '.build-stamp.json';

const files = (dir) => readdirSync(dir, { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name)); // path: Node before 20.12

/** Relative imports stay modules of their own, renamed from .ts/.tsx to .js. */
const keepModules = {
  name: 'keep-modules',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => (args.kind === 'entry-point' ? undefined : { path: args.path.replace(/\.tsx?$/, '.js'), external: true }));
  },
};

const startedMs = Date.now();
const all = files(SRC);
rmSync(STAGING, { recursive: true, force: true });
try {
  await build({
    entryPoints: all.filter((f) => /\.tsx?$/.test(f) && !f.endsWith('.d.ts')),
    outdir: STAGING, outbase: SRC, bundle: true, packages: 'external', plugins: [keepModules],
    platform: 'node', format: 'esm', target: 'node20', tsconfig: join(ROOT, 'tsconfig.json'), logLevel: 'warning',
  });
  for (const f of all.filter((f) => f.endsWith('.mjs'))) {
    mkdirSync(dirname(join(STAGING, relative(SRC, f))), { recursive: true });
    cpSync(f, join(STAGING, relative(SRC, f)));
  }
  writeFileSync(join(STAGING, STAMP), `${JSON.stringify({ startedMs })}\n`);
  rmSync(DIST, { recursive: true, force: true });
  renameSync(STAGING, DIST);
} catch (error) {
  rmSync(STAGING, { recursive: true, force: true });
  process.stderr.write(`build: ${error.message}\n`);
  process.exit(1);
}
