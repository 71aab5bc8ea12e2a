/**
 * Where everything goes on the screen, from the terminal size alone. The controller uses it
 * to know how many event rows to read (only the visible ones are read from the timeline);
 * the components use it to size their boxes. One stacked layout serves 80x24 and larger:
 * header, timeline bar, pane tabs, event list, event detail, state pane, status line.
 */

export interface Size {
  columns: number;
  rows: number;
}

export interface Layout {
  /** Columns every line is cut to. */
  width: number;
  eventRows: number;
  detailRows: number;
  paneRows: number;
}

/** The size the TUI is designed for; smaller terminals get a cramped but working screen. */
export const DESIGN_SIZE: Size = { columns: 80, rows: 24 };
/** Lines that are not body: header, timeline bar, tabs, status line. */
const CHROME_ROWS = 4;

export function layoutFor(size: Size): Layout {
  const width = Math.max(40, size.columns);
  // The terminal's last line stays empty: Ink leaves its cursor there after each frame.
  const lines = Math.max(12, size.rows - 1);
  const body = lines - CHROME_ROWS;
  const detailRows = body >= 30 ? 3 : 2;
  const eventRows = Math.max(3, Math.floor((body - detailRows) * 0.42));
  return { width, eventRows, detailRows, paneRows: body - detailRows - eventRows };
}
