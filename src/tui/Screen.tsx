/** One frame: header, timeline bar, pane tabs, the body (browse or an overlay), status line. */
import { Box } from 'ink';
import { DiffPanel } from './DiffPanel.tsx';
import { EventDetail } from './EventDetail.tsx';
import { EventList } from './EventList.tsx';
import { ForkDialog } from './ForkDialog.tsx';
import { HelpOverlay } from './HelpOverlay.tsx';
import { line } from './span-lines.ts';
import { LineText } from './Lines.tsx';
import { RunPicker } from './RunPicker.tsx';
import { StatePane } from './StatePane.tsx';
import { TimelineBar } from './TimelineBar.tsx';
import type { AppView, BodyView } from './view.ts';

export interface ScreenProps {
  /** Everything the frame shows. */
  view: AppView;
}

function Body({ body, view }: { body: BodyView; view: AppView }) {
  const { layout, theme } = view;
  const width = layout.width;
  const height = layout.eventRows + layout.detailRows + layout.paneRows;
  switch (body.kind) {
    case 'browse': {
      const digits = String(Math.max(...body.rows.map((r) => r.seq), 0)).length;
      return (
        <Box flexDirection="column">
          <EventList rows={body.rows} height={layout.eventRows} width={width} theme={theme} seqDigits={Math.max(digits, 6)} />
          <EventDetail lines={body.detail} height={layout.detailRows} width={width} />
          <StatePane pane={body.pane} height={layout.paneRows} width={width} theme={theme} />
        </Box>
      );
    }
    case 'help': return <HelpOverlay sections={body.sections} height={height} width={width} />;
    case 'fork': return <ForkDialog form={body.form} run={body.run} height={height} width={width} theme={theme} />;
    case 'picker': return <RunPicker runs={body.runs} selected={body.selected} height={height} width={width} theme={theme} />;
    case 'diff': return <DiffPanel diff={body.diff} eventsHeight={layout.eventRows + layout.detailRows} differencesHeight={layout.paneRows} width={width} theme={theme} />;
  }
}

export function Screen({ view }: ScreenProps) {
  const width = view.layout.width;
  return (
    <Box flexDirection="column" width={width}>
      <LineText spans={line(view.header)} width={width} />
      <TimelineBar bar={view.bar} width={width} />
      <LineText spans={view.tabs} width={width} />
      <Body body={view.body} view={view} />
      <LineText spans={view.status} width={width} />
    </Box>
  );
}
