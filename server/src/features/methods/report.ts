// qdq/report: the last run's report.json for the project of a file (null when nothing ran yet).
import * as fs from 'fs';
import * as path from 'path';
import { findProjectDir } from '../project';
import { uriToPath } from '../hover';
import { readReport } from '../pipelineBridge';
import type { Session } from '../../session/session';
import { ReportRequest, type ReportParams } from '../../protocol/lsp_ext';
import { guarded } from './register';

/** The project of `uri`: a file's nearest pyproject.toml folder; a folder given as the uri is searched from itself. */
async function projectOf(uri: string): Promise<string> {
  const p = uriToPath(uri);
  const isDir = await fs.promises.stat(p).then(
    (st) => st.isDirectory(),
    () => false,
  );
  return findProjectDir(isDir ? path.join(p, 'pyproject.toml') : p);
}

export function register(session: Session): void {
  session.connection.onRequest(
    ReportRequest,
    guarded(session, ReportRequest.method, async (p: ReportParams) =>
      readReport(await projectOf(p.uri), session.settings, (m) => session.log(m)),
    ),
  );
}
