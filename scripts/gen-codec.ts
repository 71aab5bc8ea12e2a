/**
 * Writes src/events/generated/event-codecs.ts from the event shapes of src/events/schema.ts:
 * per kind, a constructor that lays the fields out in schema order, the record msgpackr
 * packs, and (for kinds made only of numbers, booleans and number arrays) the fast writer of
 * its values. Ordinary source, so each kind's functions are separate functions V8 optimises
 * on their own, as the codec's speed needs, with nothing compiled from strings at run time.
 *
 * `npm run gen` rewrites the file; test/generated-codec.test.ts fails when it is stale.
 * The field types come from TypeScript's checker, so a field's type alias (DomainId, Mfn)
 * counts as what it stands for.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { EVENT_FIELDS, EVENT_KINDS, type EventKind } from '../src/events/schema.ts';

export const SCHEMA_PATH = fileURLToPath(new URL('../src/events/schema.ts', import.meta.url));
export const GENERATED_PATH = fileURLToPath(new URL('../src/events/generated/event-codecs.ts', import.meta.url));

/** How the fast path writes a field; 'other' (strings, bytes) leaves the kind to msgpackr. */
export type FieldClass = 'number' | 'boolean' | 'numbers' | 'other';

/** Each kind's field classes, read from the `Shape` interface of schema.ts. */
export function fieldClasses(schemaPath = SCHEMA_PATH): Map<string, Map<string, FieldClass>> {
  const program = ts.createProgram([schemaPath], { strict: true, noEmit: true, allowImportingTsExtensions: true, target: ts.ScriptTarget.ES2022 });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(schemaPath);
  const shape = source?.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'Shape');
  if (shape === undefined) throw new Error(`${schemaPath}: no interface Shape`);
  const classify = (type: ts.Type): FieldClass => {
    if (type.flags & ts.TypeFlags.NumberLike) return 'number';
    if (type.flags & ts.TypeFlags.BooleanLike) return 'boolean';
    if (checker.isArrayType(type) && (checker.getTypeArguments(type as ts.TypeReference)[0].flags & ts.TypeFlags.NumberLike)) return 'numbers';
    return 'other';
  };
  const kinds = new Map<string, Map<string, FieldClass>>();
  for (const member of shape.members) {
    if (!ts.isPropertySignature(member) || member.type === undefined || !ts.isTypeLiteralNode(member.type)) continue;
    const fields = new Map<string, FieldClass>();
    for (const field of member.type.members) {
      if (!ts.isPropertySignature(field) || field.type === undefined) continue;
      fields.set((field.name as ts.Identifier).text, classify(checker.getTypeFromTypeNode(field.type)));
    }
    kinds.set(ts.isStringLiteral(member.name) ? member.name.text : (member.name as ts.Identifier).text, fields);
  }
  return kinds;
}

/**
 * A uint32 `v` written in place (what msgpack-write's writeUint32 does): inline, because the
 * per-kind writers run for most events, and with a call per field encodeEvent took 1.3x as long.
 */
const uint32 = (v: string): string => `if (${v} < 0x40) t[p++] = ${v}; else if (${v} < 0x100) { t[p] = 0xcc; t[p + 1] = ${v}; p += 2; } `
  + `else if (${v} < 0x10000) { t[p] = 0xcd; t[p + 1] = ${v} >> 8; t[p + 2] = ${v} & 0xff; p += 3; } `
  + `else { t[p] = 0xce; t[p + 1] = ${v} >>> 24; t[p + 2] = (${v} >> 16) & 0xff; t[p + 3] = (${v} >> 8) & 0xff; t[p + 4] = ${v} & 0xff; p += 5; }`;

/**
 * One field's write: a uint32 (the common case) in place, anything else through
 * writeOtherNumber; each array field gets a loop of its own, since one loop shared by every
 * kind would see arrays of every element kind and lose its optimised code.
 */
function fieldWrite(field: string, fieldClass: Exclude<FieldClass, 'other'>): string[] {
  const value = `e.${field}`;
  if (fieldClass === 'boolean') return [`if (${value} === true) t[p++] = 0xc3; else if (${value} === false) t[p++] = 0xc2; else return FAIL;`];
  if (fieldClass === 'number') return [`v = ${value};`, `if (v >>> 0 === v) { ${uint32('v')} } else if ((p = writeOtherNumber(t, p, v)) < 0) return FAIL;`];
  return [
    `a = ${value};`,
    'if (!isShortArray(a)) return FAIL;',
    'p = writeArrayHeader(t, p, a.length);',
    'for (let i = 0; i < a.length; i++) {',
    '  const x = a[i];',
    `  if (x >>> 0 === x) { ${uint32('x')} } else if ((p = writeOtherNumber(t, p, x)) < 0) return FAIL;`,
    '}',
  ];
}

/** The generated module's text. */
export function generateEventCodecs(classes = fieldClasses()): string {
  const fieldsOf = (kind: EventKind): string[] => EVENT_FIELDS[kind] as readonly string[] as string[];
  const classOf = (kind: EventKind, field: string): FieldClass => {
    const found = classes.get(kind)?.get(field);
    if (found === undefined) throw new Error(`EVENT_FIELDS names ${kind}.${field}, which the Shape interface lacks`);
    return found;
  };
  const copy = (kind: EventKind, from: string): string => fieldsOf(kind).map((f) => `${f}: ${from}.${f}`).join(', ');
  const builders = EVENT_KINDS.map((kind) => `  '${kind}': (f) => ({ kind: '${kind}', ${copy(kind, 'f')} }),`);
  const readers = EVENT_KINDS.map((kind) => `  '${kind}': (r) => ({ kind: '${kind}', ${copy(kind, 'r')} }),`);
  const records = EVENT_KINDS.map((kind) => `  '${kind}': (e, k) => ({ k, ${copy(kind, 'e')} }),`);
  const classTable = EVENT_KINDS.map((kind) => `  '${kind}': { ${fieldsOf(kind).map((f) => `${f}: '${classOf(kind, f)}'`).join(', ')} },`);
  const fast = EVENT_KINDS.filter((kind) => fieldsOf(kind).every((f) => classOf(kind, f) !== 'other')).map((kind) => {
    const classes = fieldsOf(kind).map((f) => classOf(kind, f));
    const locals = [classes.includes('number') ? 'v: number' : '', classes.includes('numbers') ? 'a: number[]' : ''].filter((l) => l !== '');
    const writes = fieldsOf(kind).flatMap((f, i) => fieldWrite(f, classes[i] as Exclude<FieldClass, 'other'>).map((line) => `    ${line}`));
    return [`  '${kind}': (e, t, p) => {`, ...(locals.length > 0 ? [`    let ${locals.join(', ')};`] : []), ...writes, '    return p;', '  },'].join('\n');
  });
  return `/**
 * GENERATED by scripts/gen-codec.ts from the event shapes in src/events/schema.ts: do not
 * edit. After changing the schema run \`npm run gen\`; test/generated-codec.test.ts fails while
 * this file is stale.
 *
 * One function per kind, so that each sees one shape of object and V8 optimises it alone.
 */
import type { EventFields, EventKind, EventOf } from '../schema.ts';
import { FAIL, isShortArray, writeArrayHeader, writeOtherNumber } from '../msgpack-write.ts';

/** A record as msgpackr packs it: the kind's code \`k\`, then the fields in schema order. */
export type EventRecord = { k: number } & Record<string, unknown>;

/** How each field is stored: a number, a boolean, an array of numbers, or other (text, bytes). */
export type FieldClass = ${"'number' | 'boolean' | 'numbers' | 'other'"};

/** Per kind: each field's class, as the schema's types say. */
export const FIELD_CLASSES: { readonly [K in EventKind]: { readonly [F in keyof EventFields<K>]: FieldClass } } = {
${classTable.join('\n')}
};

/** Per kind: the event with its fields in schema order, from its fields (makeEvent). */
export const EVENT_BUILDERS: { readonly [K in EventKind]: (f: EventFields<K>) => EventOf<K> } = {
${builders.join('\n')}
};

/**
 * Per kind: the event of a decoded record. The same as EVENT_BUILDERS, but functions of
 * their own: records have other shapes than the fields machines pass, and a function that
 * saw both would be slower for each.
 */
export const EVENT_READERS: { readonly [K in EventKind]: (r: EventFields<K>) => EventOf<K> } = {
${readers.join('\n')}
};

/** Per kind: the record of an event, \`k\` being the kind's code in the recording's kind table. */
export const EVENT_RECORDS: { readonly [K in EventKind]: (e: EventOf<K>, k: number) => EventRecord } = {
${records.join('\n')}
};

/**
 * Per kind whose fields are all numbers, booleans and number arrays: writes its values at
 * \`p\` of \`t\` as msgpackr would, returning the position after them, or FAIL when a value
 * needs msgpackr itself. Kinds with a string or byte field are always packed by msgpackr.
 */
export const FAST_VALUES: { readonly [K in EventKind]?: (e: EventOf<K>, t: Uint8Array, p: number) => number } = {
${fast.join('\n')}
};
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(GENERATED_PATH, generateEventCodecs());
  process.stdout.write(`wrote ${GENERATED_PATH}\n`);
}
