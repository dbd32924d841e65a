// qdq/quantizedModuleSource: what [tool.qdq] patch-modules would run for an installed library module.
import { quantizedModuleSource } from '../librarySource';
import type { Session } from '../../session/session';
import { QuantizedModuleSourceRequest, type QuantizedModuleSourceParams } from '../../protocol/lsp_ext';
import { guarded } from './register';

export function register(session: Session): void {
  const context = {
    trusted: () => session.trusted,
    python: () => session.python(),
    log: (line: string) => session.log(line),
  };
  session.connection.onRequest(
    QuantizedModuleSourceRequest,
    guarded(session, QuantizedModuleSourceRequest.method, (params: QuantizedModuleSourceParams) =>
      quantizedModuleSource(params, context),
    ),
  );
}
