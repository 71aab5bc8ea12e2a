/**
 * Colours, or none: with NO_COLOR set the views draw the same letters and marks without any
 * colour, so nothing the TUI shows depends on colour alone.
 */
import type { DomainId } from '../events/schema.ts';

export interface Theme {
  /** False when NO_COLOR is set: components then pass no colour to Ink at all. */
  color: boolean;
}

export const PLAIN: Theme = { color: false };
export const COLORED: Theme = { color: true };

/** NO_COLOR (https://no-color.org): present and not empty means no colour. */
export function themeFor(noColor: string | undefined): Theme {
  return noColor !== undefined && noColor !== '' ? PLAIN : COLORED;
}

const DOMAIN_COLORS = ['gray', 'cyan', 'magenta', 'yellow', 'green', 'blue', 'red', 'white'] as const;

/** The colour of a domain's frames and rows, or undefined without colour. */
export function domainColor(theme: Theme, dom: DomainId): string | undefined {
  if (!theme.color || dom < 0) return undefined;
  return DOMAIN_COLORS[dom % DOMAIN_COLORS.length];
}

/** Colours of the timeline bar's marks. */
const MARK_COLORS: Record<string, string> = { V: 'red', F: 'yellow', x: 'cyan', Y: 'green', i: 'green', '#': 'white' };

export function markColor(theme: Theme, mark: string): string | undefined {
  return theme.color ? MARK_COLORS[mark] : undefined;
}

/** A colour for emphasis (the selected row, a difference), or undefined without colour. */
export function accent(theme: Theme, name: 'selected' | 'differs' | 'problem' | 'dim'): string | undefined {
  if (!theme.color) return undefined;
  return { selected: 'cyan', differs: 'red', problem: 'red', dim: 'gray' }[name];
}
