// qdq/sensitivity: the project's sensitivity results with source locations, for the client's sensitivity view.
import type { Session } from '../../session/session';
import { SensitivityRequest, type SensitivityParams } from '../../protocol/lsp_ext';
import { sensitivityView } from '../precisionView';
import { guarded } from './register';

export function register(session: Session): void {
  session.connection.onRequest(
    SensitivityRequest,
    guarded(session, SensitivityRequest.method, (p: SensitivityParams) => {
      if (!p || typeof p.uri !== 'string') return null;
      return sensitivityView(session, p.uri);
    }),
  );
}
