// codeAction/resolve: computes the edit of an action listed without one.
import { lsp } from '../lsp';
import type { CodeAction } from '../lsp';
import { isActionData, resolveAction } from '../codeActions';
import type { Session } from '../../session/session';
import { guarded } from './register';

export function register(session: Session): void {
  session.connection.onCodeActionResolve(
    guarded(session, 'codeAction/resolve', (action: CodeAction): CodeAction => {
      if (!isActionData(action.data)) return action;
      const doc = session.documents.get(action.data.uri);
      if (!doc)
        throw new lsp.ResponseError(
          lsp.ErrorCodes.InvalidParams,
          `The document ${action.data.uri} is not open any more.`,
        );
      return { ...action, ...resolveAction(doc, action.data, session.features.edits) };
    }),
  );
}
