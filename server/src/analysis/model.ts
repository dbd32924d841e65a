// buildModelIndex: work in progress (the one-pass walker lands in the next commit).
import type { Tree } from './parser';
import type { ModelIndex } from './types';

export function buildModelIndex(tree: Tree, text: string): ModelIndex {
  return {
    classes: [],
    functions: [],
    topLevelOps: [],
    imports: { torch: [], nn: [], functional: [], nnNames: {}, funcNames: {}, usesRelativeImports: false, insertAfterLine: -1 },
    hasSyntaxErrors: tree.rootNode.hasError,
    eol: text.includes('\r\n') ? '\r\n' : '\n',
  };
}
