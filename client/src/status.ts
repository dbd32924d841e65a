// Status bar item showing the state of the Python backend, fed by the server's qdq/backendStatus notification.
import * as vscode from 'vscode';
import type { BackendStatusParams } from '../../server/src/protocol/lsp_ext';

/** What the status bar shows for one backend state: pure, so the wording is easy to check. */
export function describeStatus(status: BackendStatusParams): { text: string; tooltip: string; warning: boolean } {
  const torch = status.torchVersion ? `torch ${status.torchVersion}` : undefined;
  const python = status.python ? `Python: ${status.python}` : 'Python: not found yet';
  const lines = [python, torch ? `PyTorch: ${status.torchVersion}` : 'PyTorch: unknown'];
  if (status.message) lines.push(status.message);
  switch (status.state) {
    case 'busy':
      return { text: `$(sync~spin) QDQ: ${status.message ?? 'working'}`, tooltip: lines.join('\n'), warning: false };
    case 'ready':
      return { text: `$(check) QDQ${torch ? `: ${torch}` : ''}`, tooltip: lines.join('\n'), warning: false };
    case 'error':
      return { text: '$(error) QDQ: backend problem', tooltip: lines.join('\n'), warning: true };
    case 'untrusted':
      return {
        text: '$(shield) QDQ: restricted',
        tooltip: 'Workspace not trusted: diagnostics and edits work, calibration and export (which run your code) are disabled.',
        warning: false,
      };
    default:
      return { text: '$(circle-outline) QDQ', tooltip: lines.join('\n'), warning: false };
  }
}

/** The status bar item; clicking it opens the interpreter picker. */
export class BackendStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('qdq.backendStatus', vscode.StatusBarAlignment.Right, 100);
  /** Last status the server sent (tests read it to know the backend state). */
  last: BackendStatusParams = { state: 'unknown' };

  constructor() {
    this.item.name = 'QDQ backend';
    this.item.command = 'qdq.selectInterpreter';
    this.update({ state: 'unknown', message: 'starting the language server' });
    this.item.show();
  }

  update(status: BackendStatusParams): void {
    this.last = status;
    const view = describeStatus(status);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
