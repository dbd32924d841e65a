// The LSP library as the server code uses it: `lsp.X` for values, plain names for types.
import * as lsp from 'vscode-languageserver/node';
export { lsp };
export type * from 'vscode-languageserver/node';
export { TextDocument } from 'vscode-languageserver-textdocument';
export type { TextDocument as TextDocumentType } from 'vscode-languageserver-textdocument';
