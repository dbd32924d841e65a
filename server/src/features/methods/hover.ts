// textDocument/hover: the layer, op or quantizer under the cursor, with its calibrated range when there is one.
import { hover, uriToPath } from '../hover';
import type { Hover, HoverParams } from '../lsp';
import type { Session } from '../../session/session';
import { onPythonDocument } from './register';

export function register(session: Session): void {
  session.connection.onHover(
    onPythonDocument<HoverParams, Hover | null>(session, 'hover', null, async (doc, params) => {
      await session.ensureCalibrationLoaded(uriToPath(doc.uri));
      return hover(doc, params.position, session.calibration);
    }),
  );
}
