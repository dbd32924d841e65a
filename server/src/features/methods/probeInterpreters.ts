// qdq/probeInterpreters: the picker's candidates with their full path and torch version, probed side by side.
import { lsp } from '../lsp';
import { findProjectDir } from '../project';
import { uriToPath } from '../hover';
import { probeInterpreter } from '../pipelineBridge';
import type { Session } from '../../session/session';
import { ProbeInterpretersRequest, type ProbeInterpretersParams } from '../../protocol/lsp_ext';
import { guarded } from './register';

/** More would only slow the picker down; the picker offers a handful. */
const MAX_CANDIDATES = 8;

export function register(session: Session): void {
  session.connection.onRequest(
    ProbeInterpretersRequest,
    guarded(session, ProbeInterpretersRequest.method, async (p: ProbeInterpretersParams) => {
      if (!session.trusted)
        throw new lsp.ResponseError(
          lsp.ErrorCodes.InvalidRequest,
          'Workspace not trusted: checking interpreters runs them. Trust the workspace to pick one here.',
          { kind: 'untrusted' },
        );
      const candidates = Array.isArray(p?.candidates)
        ? p.candidates.filter((c): c is string => typeof c === 'string' && !!c).slice(0, MAX_CANDIDATES)
        : [];
      const cwd = p.uri?.startsWith('file:') ? findProjectDir(uriToPath(p.uri)) : process.cwd();
      return Promise.all(candidates.map((c) => probeInterpreter(c, cwd)));
    }),
  );
}
