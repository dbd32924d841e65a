// qdq/fileState: whether the file-wide quantize / remove commands would change the document (menus use it).
import { fileHasWork } from '../codeActions';
import type { Session } from '../../session/session';
import { FileStateRequest, type FileStateParams, type FileStateResult } from '../../protocol/lsp_ext';
import { onPythonDocument } from './register';

export function register(session: Session): void {
  session.connection.onRequest(
    FileStateRequest,
    onPythonDocument<FileStateParams, FileStateResult | null>(session, FileStateRequest.method, null, (doc) => {
      const work = fileHasWork(doc.getIndex(), doc.getTree(), doc.getText());
      return { canQuantize: work.quantize, canRemove: work.remove };
    }),
  );
}
