/** Draws lines of coloured spans, exactly `rows` of them, each cut to `width`. */
import { Box, Text } from 'ink';
import { fitLine, type Line } from './span-lines.ts';

export interface LinesProps {
  /** The lines to draw; extra lines are dropped, missing ones left blank. */
  lines: readonly Line[];
  /** How many terminal lines the block takes. */
  rows: number;
  /** Columns each line is cut to. */
  width: number;
}

export function LineText({ spans, width }: { spans: Line; width: number }) {
  const fitted = fitLine(spans, width);
  if (fitted.length === 0) return <Text> </Text>;
  return (
    <Text wrap="truncate">
      {fitted.map((span, i) => <Text key={i} color={span.color}>{span.text}</Text>)}
    </Text>
  );
}

export function Lines({ lines, rows, width }: LinesProps) {
  const shown = Array.from({ length: rows }, (_, i) => lines[i] ?? []);
  return (
    <Box flexDirection="column" height={rows} width={width} overflow="hidden">
      {shown.map((spans, i) => <LineText key={i} spans={spans} width={width} />)}
    </Box>
  );
}
