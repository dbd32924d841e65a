// textDocument/codeAction: quantize / keep-float / remove actions (edits resolved lazily where the client can)
// and "Show quantized source" on imports of library models.
import { listCodeActions } from '../codeActions';
import { libraryCodeActions } from '../librarySource';
import type { CodeAction, CodeActionParams } from '../lsp';
import type { Session } from '../../session/session';
import { onPythonDocument } from './register';

export function register(session: Session): void {
  session.connection.onCodeAction(
    onPythonDocument<CodeActionParams, CodeAction[]>(session, 'code actions', [], (doc, params) => [
      ...listCodeActions(doc, params, session.features.edits),
      ...libraryCodeActions(doc, params, session.trusted),
    ]),
  );
}
