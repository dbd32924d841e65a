// textDocument/hover: the layer, op or quantizer under the cursor, with its calibrated range when there is one
// and, after a sensitivity run, both of its sensitivity numbers.
import { hover, uriToPath } from '../hover';
import { lsp } from '../lsp';
import type { Hover, HoverParams } from '../lsp';
import type { Session } from '../../session/session';
import { documentSensitivity } from '../precisionView';
import { layerAt, sensitivityHoverMarkdown } from '../sensitivity';
import { onPythonDocument } from './register';

export function register(session: Session): void {
  session.connection.onHover(
    onPythonDocument<HoverParams, Hover | null>(session, 'hover', null, async (doc, params) => {
      await session.ensureCalibrationLoaded(uriToPath(doc.uri));
      const base = hover(doc, params.position, session.calibration);
      const { layers, results } = await documentSensitivity(session, doc);
      const layer = layerAt(layers, params.position.line, params.position.character);
      const data = results.sensitivity?.data;
      if (!layer || !data) return base;
      const extra = sensitivityHoverMarkdown(layer, data);
      const value = base && lsp.MarkupContent.is(base.contents) ? `${base.contents.value}\n\n---\n\n${extra}` : extra;
      return { contents: { kind: lsp.MarkupKind.Markdown, value }, range: base?.range ?? layer.range };
    }),
  );
}
