// Status bar item showing the state of the Python backend, fed by the server's qdq/backendStatus notification.
import * as vscode from 'vscode';
import type { BackendStatusParams } from '../../server/src/protocol/lsp_ext';
import { describeStatus } from './statusText';

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
