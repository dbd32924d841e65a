// Python's own parser as a test oracle: one python3 subprocess per batch of sources (spawned without a shell).
import { spawnSync } from 'child_process';

const SCRIPT = `
import ast, json, sys
out = []
for src in json.load(sys.stdin):
    try:
        ast.parse(src)
        out.append(None)
    except SyntaxError as e:
        out.append(f"{e.msg} at line {e.lineno}")
print(json.dumps(out))
`;

/** For each source: null when ast.parse accepts it, else the error. Undefined when python3 cannot run. */
export function pythonParseErrors(sources: string[]): (string | null)[] | undefined {
  const r = spawnSync('python3', ['-c', SCRIPT], {
    input: JSON.stringify(sources),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as (string | null)[];
}
