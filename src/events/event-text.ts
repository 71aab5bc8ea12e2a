/**
 * How the text and byte fields of an event read as text: one rule, shared by the lines that
 * `log` and the TUI print (replay/format.ts) and by the chunk index's text filter
 * (chunk-summary.ts), which must see exactly the text a search will look through.
 */

const BYTES_SHOWN = 24;

/** Mostly printable ASCII: shown as a string rather than hex. */
function isPrintable(bytes: Uint8Array): boolean {
  let printable = 0;
  for (const b of bytes) if (b >= 0x20 && b < 0x7f) printable++;
  return bytes.length > 0 && printable / bytes.length > 0.9;
}

/** Bytes as a line shows them: zero(NB), a quoted string when printable, else hex; the first 24 bytes. */
export function bytesText(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, BYTES_SHOWN));
  const more = bytes.length > BYTES_SHOWN ? `..(${bytes.length}B)` : '';
  if (bytes.every((b) => b === 0)) return `zero(${bytes.length}B)`;
  return isPrintable(shown) ? JSON.stringify(shown.toString('latin1')) + more : shown.toString('hex') + more;
}

/**
 * The text of bytes that read as a string (quoted, as bytesText shows them), or undefined
 * when they show as hex or zeros: only text made of the digits a-f, x and 0-9, which the
 * text filter counts as anywhere (see text-trigrams.ts), or the word `zero`.
 */
export function printableBytesText(bytes: Uint8Array): string | undefined {
  const shown = bytes.length > BYTES_SHOWN ? bytes.subarray(0, BYTES_SHOWN) : bytes;
  if (!isPrintable(shown)) return undefined;
  return JSON.stringify(Buffer.from(shown.buffer, shown.byteOffset, shown.length).toString('latin1'));
}

/** A string field as a line shows it: quoted when it is empty or holds blanks or quotes. */
export function stringText(value: string): string {
  return /[\s"]/.test(value) || value === '' ? JSON.stringify(value) : value;
}
