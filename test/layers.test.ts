/**
 * The architecture's rules, checked on the sources:
 * - determinism: no clocks, timers, environment or ambient randomness in src/core,
 *   src/events and src/replay;
 * - no file system in src/core or src/replay;
 * - the dependency direction events <- core <- replay <- fuzz/tui <- cli.
 * Offences are reported as file:line so they can be fixed where they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

/** What each layer may import from the project (itself included). */
const ALLOWED: Record<string, readonly string[]> = {
  events: ['events'],
  core: ['core', 'events'],
  replay: ['replay', 'core', 'events'],
  tui: ['tui', 'replay', 'core', 'events'],
  fuzz: ['fuzz', 'replay', 'core', 'events'],
  cli: ['cli', 'tui', 'fuzz', 'replay', 'core', 'events'],
};
// The fuzzer is deterministic for a seed too: the CLI hands it its clock.
const DETERMINISTIC_LAYERS = ['core', 'events', 'replay', 'fuzz'];
const NO_FS_LAYERS = ['core', 'replay', 'fuzz'];
const FS_MODULES = new Set(['fs', 'node:fs', 'fs/promises', 'node:fs/promises']);

const FORBIDDEN: [RegExp, string][] = [
  [/(?<![.\w$])Date\b/, 'Date (wall clock)'],
  [/\bMath\s*\.\s*random\b/, 'Math.random'],
  [/\bperformance\s*\.\s*now\b/, 'performance.now'],
  [/\bprocess\s*\.\s*hrtime\b/, 'process.hrtime'],
  [/\b(setTimeout|setInterval|setImmediate)\b/, 'a timer'],
  [/\bprocess\s*\.\s*env\b/, 'process.env'],
  [/\b(randomBytes|randomUUID|getRandomValues|randomInt|randomFill|randomFillSync)\b/, 'ambient randomness (crypto)'],
];

// ---- a small scanner: blanks comments (and, for API checks, string contents) --------

/**
 * Returns the source with comments replaced by spaces, and a second copy with string and
 * template contents blanked too. Line breaks are kept, so offsets map to the same lines.
 */
function strip(source: string): { code: string; bare: string } {
  const code = source.split('');
  const bare = source.split('');
  const blank = (arr: string[], from: number, to: number): void => {
    for (let k = from; k < to; k++) if (arr[k] !== '\n') arr[k] = ' ';
  };
  let i = 0;
  let lastSignificant = '';
  const templateDepth: number[] = []; // brace depth at which each open template resumes
  let braces = 0;
  const regexAllowedAfter = new Set(['', '(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-', '*', '%', '<', '>', '~', '^']);
  const readString = (quote: string, start: number): number => {
    let j = start + 1;
    while (j < source.length && source[j] !== quote && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
    return Math.min(j + 1, source.length);
  };
  /** Scans template text from `start` (just after ` or }); returns where code resumes. */
  const readTemplate = (start: number): number => {
    let j = start;
    while (j < source.length) {
      if (source[j] === '\\') { j += 2; continue; }
      if (source[j] === '`') { blank(bare, start, j); return j + 1; }
      if (source[j] === '$' && source[j + 1] === '{') {
        blank(bare, start, j);
        templateDepth.push(braces);
        braces += 1;
        return j + 2;
      }
      j++;
    }
    blank(bare, start, j);
    return j;
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? source.length : end;
      blank(code, i, stop); blank(bare, i, stop);
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? source.length : end + 2;
      blank(code, i, stop); blank(bare, i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      const stop = readString(c, i);
      blank(bare, i + 1, stop - 1);
      i = stop;
      lastSignificant = 'x';
    } else if (c === '`') {
      i = readTemplate(i + 1);
      lastSignificant = 'x';
    } else if (c === '/' && regexAllowedAfter.has(lastSignificant)) {
      // A regular expression literal: skip it, classes included.
      let j = i + 1;
      let inClass = false;
      while (j < source.length && source[j] !== '\n') {
        if (source[j] === '\\') { j += 2; continue; }
        if (source[j] === '[') inClass = true;
        else if (source[j] === ']') inClass = false;
        else if (source[j] === '/' && !inClass) break;
        j++;
      }
      blank(bare, i + 1, j);
      i = j + 1;
      lastSignificant = 'x';
    } else {
      if (c === '{') braces += 1;
      if (c === '}') {
        braces -= 1;
        if (templateDepth.length > 0 && templateDepth[templateDepth.length - 1] === braces) {
          templateDepth.pop();
          i = readTemplate(i + 1);
          lastSignificant = 'x';
          continue;
        }
      }
      if (!/\s/.test(c)) {
        // `return /re/` and friends: a keyword ends like an operator.
        lastSignificant = /[\w$]/.test(c) ? 'x' : c;
        if (/[\w$]/.test(c)) {
          let j = i;
          while (j < source.length && /[\w$]/.test(source[j])) j++;
          const word = source.slice(i, j);
          lastSignificant = ['return', 'typeof', 'case', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await'].includes(word) ? '(' : 'x';
          i = j;
          continue;
        }
      }
      i++;
    }
  }
  return { code: code.join(''), bare: bare.join('') };
}

/** Module specifiers with their offsets: static, re-export, side-effect and dynamic imports. */
function importsOf(code: string): { spec: string; index: number }[] {
  const found: { spec: string; index: number }[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;
  for (const m of code.matchAll(pattern)) found.push({ spec: m[2], index: m.index! });
  return found;
}

const lineOf = (text: string, index: number): number => text.slice(0, index).split('\n').length;

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(m|c)?(t|j)sx?$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const layerOf = (path: string): string | undefined => {
  const rel = relative(SRC, path);
  return rel.startsWith('..') ? undefined : rel.split(sep)[0];
};
const shown = (path: string): string => relative(ROOT, path);

// ---- the scanner itself -------------------------------------------------------------

test('the scanner blanks comments and strings and finds every kind of import', () => {
  const sample = [
    "import { a } from './a.ts'; // Date.now() in a comment",
    '/* Math.random() in a block',
    '   comment */ const re = /["\'`]\\/*/g; const url = "http://x/*";',
    "const t = `template ${Date.now()} and ${ { x: 1 }.x } text setTimeout`;",
    "export * from '../events/schema.ts';",
    "import type {",
    "  B,",
    "} from 'node:fs';",
    "const m = await import('../cli/main.ts'); const s = 'process.env';",
    "if (x) return /a'b/.test(y); setImmediate(f);",
  ].join('\n');
  const { code, bare } = strip(sample);
  assert.equal(code.split('\n').length, sample.split('\n').length, 'lines are kept');
  assert.deepEqual(importsOf(code).map((i) => [i.spec, lineOf(code, i.index)]), [
    ['./a.ts', 1], ['../events/schema.ts', 5], ['node:fs', 8], ['../cli/main.ts', 9],
  ]);
  const hits = (re: RegExp): number[] => bare.split('\n').flatMap((line, n) => (re.test(line) ? [n + 1] : []));
  assert.deepEqual(hits(FORBIDDEN[0][0]), [4], 'Date only in the template expression');
  assert.deepEqual(hits(FORBIDDEN[1][0]), [], 'Math.random only in a comment');
  assert.deepEqual(hits(FORBIDDEN[4][0]), [10], 'timers: only the real call');
  assert.deepEqual(hits(FORBIDDEN[5][0]), [], 'process.env only in a string');
});

// ---- the rules ----------------------------------------------------------------------

const files = sourceFiles(SRC).map((path) => ({ path, layer: layerOf(path)!, ...strip(readFileSync(path, 'utf8')) }));

test('the sources are found', () => {
  for (const layer of ['events', 'core', 'replay', 'cli']) {
    assert.ok(files.some((f) => f.layer === layer), `no sources in src/${layer}`);
  }
});

test('no clock, timer, environment or ambient randomness in src/core, src/events, src/replay', () => {
  const offences: string[] = [];
  for (const f of files.filter((x) => DETERMINISTIC_LAYERS.includes(x.layer))) {
    f.bare.split('\n').forEach((line, n) => {
      for (const [pattern, what] of FORBIDDEN) {
        if (pattern.test(line)) offences.push(`${shown(f.path)}:${n + 1}: ${what}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offences, []);
});

test('no file system in src/core or src/replay', () => {
  const offences: string[] = [];
  for (const f of files.filter((x) => NO_FS_LAYERS.includes(x.layer))) {
    for (const { spec, index } of importsOf(f.code)) {
      if (FS_MODULES.has(spec)) offences.push(`${shown(f.path)}:${lineOf(f.code, index)}: imports ${spec}`);
    }
  }
  assert.deepEqual(offences, []);
});

test('imports follow events <- core <- replay <- fuzz/tui <- cli', () => {
  const offences: string[] = [];
  for (const f of files) {
    const allowed = ALLOWED[f.layer];
    if (allowed === undefined) continue;
    for (const { spec, index } of importsOf(f.code)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(f.path), spec);
      const where = `${shown(f.path)}:${lineOf(f.code, index)}`;
      const layer = layerOf(target);
      if (layer === undefined) {
        offences.push(`${where}: imports ${spec}, outside src/`);
      } else if (!allowed.includes(layer)) {
        offences.push(`${where}: src/${f.layer} imports src/${layer} (${spec}); src/${f.layer} may import only ${allowed.map((l) => `src/${l}`).join(', ')}`);
      }
    }
  }
  assert.deepEqual(offences, []);
});

// ---- inside src/core: hardware <- hypervisor <- machine ---------------------------------

/** What each layer of src/core may import from src/core (itself included). */
const CORE_ALLOWED: Record<string, readonly string[]> = {
  hardware: ['hardware'],
  hypervisor: ['hypervisor', 'hardware'],
  machine: ['machine', 'hypervisor', 'hardware'],
};
const CORE = join(SRC, 'core');
const coreLayerOf = (path: string): string | undefined => {
  const rel = relative(CORE, path);
  return rel.startsWith('..') ? undefined : rel.split(sep)[0];
};

test('src/core holds its three layers and nothing beside them', () => {
  assert.deepEqual(readdirSync(CORE).sort(), Object.keys(CORE_ALLOWED).sort());
});

test('inside src/core imports follow hardware <- hypervisor <- machine', () => {
  const offences: string[] = [];
  for (const f of files.filter((x) => x.layer === 'core')) {
    const from = coreLayerOf(f.path)!;
    for (const { spec, index } of importsOf(f.code)) {
      if (!spec.startsWith('.')) continue;
      const to = coreLayerOf(resolve(dirname(f.path), spec));
      if (to !== undefined && !CORE_ALLOWED[from].includes(to)) {
        offences.push(`${shown(f.path)}:${lineOf(f.code, index)}: core/${from} imports core/${to} (${spec}); core/${from} may import only ${CORE_ALLOWED[from].map((l) => `core/${l}`).join(', ')}`);
      }
    }
  }
  assert.deepEqual(offences, []);
});

/** Ways to run code held in strings; none of them in src/ (tools that read code cannot see it). */
const CODE_FROM_STRINGS: [RegExp, string][] = [
  [/\bnew\s+Function\b|(?<![.\w$])Function\s*\(/, 'the Function constructor'],
  [/(?<![.\w$])eval\s*\(/, 'eval'],
  [/\beval\s*:\s*true\b/, 'a worker started from source text (eval: true)'],
];

test('no code compiled from strings in src/ (Function, eval, workers with eval: true, node:vm)', () => {
  const sample = strip("const f = new Function('x', 'return x'); const w = new Worker(s, { eval: true }); eval(t); // new Function in a comment");
  assert.deepEqual(CODE_FROM_STRINGS.filter(([pattern]) => pattern.test(sample.bare)).length, 3, 'the patterns find each form');
  const offences: string[] = [];
  for (const f of files) {
    f.bare.split('\n').forEach((line, n) => {
      for (const [pattern, what] of CODE_FROM_STRINGS) {
        if (pattern.test(line)) offences.push(`${shown(f.path)}:${n + 1}: ${what}: ${line.trim()}`);
      }
    });
    for (const { spec, index } of importsOf(f.code)) {
      if (spec === 'vm' || spec === 'node:vm') offences.push(`${shown(f.path)}:${lineOf(f.code, index)}: imports ${spec}`);
    }
  }
  assert.deepEqual(offences, []);
});

// ---- no import circles ------------------------------------------------------------------

/** The strongly connected components of more than one file (Tarjan), each sorted. */
function circles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** Every relative import of every file under src/, type-only ones included, by file. */
function importGraph(): Map<string, string[]> {
  const paths = new Set(files.map((f) => f.path));
  const resolveSpec = (from: string, spec: string): string | undefined => {
    const base = resolve(dirname(from), spec);
    return [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts')].find((p) => paths.has(p));
  };
  return new Map(files.map((f) => [f.path, importsOf(f.code).flatMap(({ spec }) => {
    const target = spec.startsWith('.') ? resolveSpec(f.path, spec) : undefined;
    return target === undefined ? [] : [target];
  })]));
}

test('the circle finder finds circles and only circles', () => {
  const graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', ['e']], ['e', ['d']], ['f', ['a']]]);
  assert.deepEqual(circles(graph).map((c) => c.join(',')).sort(), ['a,b,c', 'd,e']);
  assert.deepEqual(circles(new Map([['a', ['b']], ['b', []]])), []);
});

test('no import circle anywhere under src/ (type-only imports count)', () => {
  assert.deepEqual(circles(importGraph()).map((c) => c.map(shown).join(' -> ')), []);
});
