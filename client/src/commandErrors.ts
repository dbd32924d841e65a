// How a failed server command is told to the user (pure, tested without VS Code): one message, the problem and
// then the fix as separate sentences, and the action that fixes it when there is one.
export interface CommandErrorView {
  /** The error notification's text. */
  text: string;
  /** Buttons, most useful first. */
  actions: string[];
  /** The output channel's line. */
  log: string;
}

/** A sentence: first letter capitalized, ending with a full stop (unless it already ends a sentence). */
function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?:)]$/.test(capital) ? capital : `${capital}.`;
}

function field(data: unknown, key: string): string | undefined {
  if (!data || typeof data !== 'object') return undefined;
  const v = (data as Record<string, unknown>)[key];
  return typeof v === 'string' && v ? v : undefined;
}

/**
 * `message` is the ResponseError's message (the server puts the hint after the message there too); `data` is
 * its data ({kind, message, hint}, server/src/features/pipelineBridge.ts ErrorInfo) when the server sent one.
 */
export function describeCommandError(title: string, message: string, data: unknown): CommandErrorView {
  const bare = field(data, 'message') ?? message;
  const hint = field(data, 'hint');
  const kind = field(data, 'kind');
  const text = `QDQ: ${title} failed. ${sentence(bare)}${hint ? ` ${sentence(hint)}` : ''}`;
  const actions = [];
  if (kind === 'config' && /no pyproject\.toml/.test(bare)) actions.push('Create pyproject.toml');
  actions.push('Show Logs');
  return { text, actions, log: `${title} failed (${kind ?? 'error'}): ${bare}${hint ? `\n  fix: ${hint}` : ''}` };
}

/** The pyproject.toml "Create pyproject.toml" writes: every key a run needs, each with what it expects. */
export function pyprojectTemplate(modelFile: string): string {
  return [
    '[tool.qdq]',
    '# file.py:factory, a callable returning the nn.Module',
    `model = "${modelFile}:build_model"`,
    '# file.py:fn returning example inputs (or input-shapes = [[1, 3, 224, 224]])',
    'example-inputs = "data.py:example_inputs"',
    '# file.py:fn yielding calibration batches',
    'calibration-data = "data.py:calibration_data"',
    '',
  ].join('\n');
}
