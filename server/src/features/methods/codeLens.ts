// textDocument/codeLens: after a sensitivity run, "INT8: -0.42 pt" above every quantized layer it measured.
import type { CodeLens, CodeLensParams } from '../lsp';
import type { Session } from '../../session/session';
import { documentSensitivity } from '../precisionView';
import { sensitivityLenses } from '../sensitivity';
import { onPythonDocument } from './register';

export function register(session: Session): void {
  session.connection.onCodeLens(
    onPythonDocument<CodeLensParams, CodeLens[]>(session, 'codeLens', [], async (doc) => {
      const { layers, results } = await documentSensitivity(session, doc);
      const metric = results.sensitivity?.data.metric;
      return metric ? sensitivityLenses(layers, metric, doc.uri) : [];
    }),
  );
}
