/** A one-line text input (the `:` and `/` prompts and the fork form): pure edits. */
import type { KeyPress } from './keymap.ts';

export interface TextField {
  text: string;
  /** Insertion point, 0..text.length. */
  cursor: number;
  /** Still the offered default: the first typed text replaces it, as in a selected field. */
  pristine?: boolean;
}

export function textField(text = ''): TextField {
  return { text, cursor: text.length };
}

/** A field holding a default that typing replaces. */
export function defaultField(text: string): TextField {
  return { text, cursor: text.length, pristine: true };
}

/** The field after `press`, or undefined when the key is not an editing key. */
export function editField(field: TextField, press: KeyPress): TextField | undefined {
  const { text, cursor } = field;
  switch (press.name) {
    case 'left': return { text, cursor: Math.max(0, cursor - 1) };
    case 'right': return { text, cursor: Math.min(text.length, cursor + 1) };
    case 'home': case 'C-a': return { text, cursor: 0 };
    case 'end': case 'C-e': return { text, cursor: text.length };
    case 'C-u': return textField('');
    case 'backspace':
      if (field.pristine) return textField('');
      return cursor === 0 ? field : { text: text.slice(0, cursor - 1) + text.slice(cursor), cursor: cursor - 1 };
    default: break;
  }
  // Typed or pasted text; line breaks in a paste end nothing here, they become spaces.
  const typed = press.text.replace(/[\r\n\t]/g, ' ').replace(/[^\x20-\x7e]/g, '');
  if (typed === '') return undefined;
  if (field.pristine) return textField(typed);
  return { text: text.slice(0, cursor) + typed + text.slice(cursor), cursor: cursor + typed.length };
}

/** The field as shown, with '_' marking the insertion point. */
export function fieldText(field: TextField): string {
  return `${field.text.slice(0, field.cursor)}_${field.text.slice(field.cursor)}`;
}
