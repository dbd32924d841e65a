// Public analysis API (see docs/DESIGN.md "Engine APIs").
export {
  parsePython,
  getParser,
  LineIndex,
  nodeRange,
  nodeSpan,
  pointToPosition,
  editFor,
  hasSyntaxErrors,
  analysisText,
} from './parser';
export type { Tree, SyntaxNode, Edit } from './parser';
export { buildModelIndex } from './model';
export * from './types';
