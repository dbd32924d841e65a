// QDQ: Show Sensitivity: a webview of the project's sensitivity results (qdq/sensitivity), bars by layer worst first,
// a click goes to the source line, "Apply precision plan" runs qdq.applyPrecisionPlan. Refreshed when the server
// says a sensitivity or tune run wrote new results (qdq/sensitivityUpdated).
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { Commands, SensitivityRequest, type SensitivityResultView } from '../../server/src/protocol/lsp_ext';
import { renderSensitivityHtml } from './sensitivityHtml';

export class SensitivityView {
  private panel: vscode.WebviewPanel | undefined;
  private shownUri: string | undefined;

  constructor(private readonly client: () => LanguageClient | undefined) {}

  /** Opens (or refreshes) the view for the project of `uri`; says what to run when there are no results yet. */
  async show(uri: string | undefined, quiet = false): Promise<SensitivityResultView | null | undefined> {
    const client = this.client();
    if (!uri || !client) return undefined;
    const view = await client.sendRequest(SensitivityRequest, { uri });
    if (!view) {
      if (!quiet)
        void vscode.window
          .showInformationMessage(
            'QDQ: no sensitivity results yet. "QDQ: Sensitivity Analysis" measures every layer group and writes sensitivity.json.',
            'Run Sensitivity Analysis',
          )
          .then((pick) => (pick ? vscode.commands.executeCommand(Commands.sensitivity, { uri }) : undefined));
      return view;
    }
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel('qdq.sensitivity', 'QDQ Sensitivity', vscode.ViewColumn.Beside, {
        enableScripts: false,
        enableCommandUris: ['qdq.openSource', Commands.applyPrecisionPlan],
        localResourceRoots: [],
      });
      this.panel.onDidDispose(() => (this.panel = undefined));
    }
    this.shownUri = uri;
    this.panel.webview.html = renderSensitivityHtml(view, {
      cspSource: this.panel.webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
    });
    this.panel.reveal(undefined, true);
    return view;
  }

  /** New results for a project: refresh the open view (it asks the server again). */
  refresh(): void {
    if (this.panel && this.shownUri) void this.show(this.shownUri, true);
  }
}
