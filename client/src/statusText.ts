// Wording of the backend status bar item (pure, so it is tested without VS Code).
import type { BackendStatusParams } from '../../server/src/protocol/lsp_ext';

/** What the status bar shows for one backend state: pure, so the wording is easy to check. */
export function describeStatus(status: BackendStatusParams): { text: string; tooltip: string; warning: boolean } {
  const torch = status.torchVersion ? `torch ${status.torchVersion}` : undefined;
  const python = status.python
    ? `Python: ${status.python}`
    : 'Python: looked for on the first run (click to choose one now)';
  const lines = [python, torch ? `PyTorch: ${status.torchVersion}` : 'PyTorch: checked with the interpreter'];
  if (status.message) lines.push(status.message);
  switch (status.state) {
    case 'busy':
      return {
        text: `$(sync~spin) QDQ: ${(status.message ?? 'working').replace(/^QDQ:\s*/, '')}`,
        tooltip: lines.join('\n'),
        warning: false,
      };
    case 'ready':
      return { text: `$(check) QDQ${torch ? `: ${torch}` : ''}`, tooltip: lines.join('\n'), warning: false };
    case 'error':
      return { text: '$(error) QDQ: backend problem', tooltip: lines.join('\n'), warning: true };
    case 'untrusted':
      return {
        text: '$(shield) QDQ: restricted',
        tooltip:
          'Workspace not trusted: diagnostics and edits work, calibration and export (which run your code) are disabled.',
        warning: false,
      };
    default:
      return { text: '$(circle-outline) QDQ', tooltip: lines.join('\n'), warning: false };
  }
}
