// Finding an installed library module's source: the interpreter that would run the model says where the
// module's file is (importlib's find_spec, which does not execute the module), and we read it. Nothing here
// writes to site-packages.
import { spawn } from 'child_process';
import { withBackendOnPath } from '../common/paths';
import { MAX_SOURCE_BYTES, readRegularFile } from '../common/files';
import { QdqError } from '../common/errors';
import { findInterpreter } from '../common/interpreter';
import { isolatedArgs, neutralCwd, probeEnv } from '../common/pythonIsolation';

export interface LibraryModuleSource {
  module: string;
  file: string;
  text: string;
  python: string;
}

const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

const LOOKUP = [
  'import json, sys',
  'from qdq_backend.errors import QdqError',
  'from qdq_backend.patching import module_source',
  'try:',
  '    info = module_source(sys.argv[1])',
  '    print(json.dumps({"file": info["file"]}))',
  'except QdqError as exc:',
  '    print(json.dumps({"error": exc.to_data()}))',
].join('\n');

export async function resolveLibraryModule(
  module: string,
  opts: { python?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<LibraryModuleSource> {
  if (!MODULE_NAME.test(module)) {
    throw new QdqError(
      'config',
      `"${module}" is not a Python module name`,
      'pass a dotted name such as transformers.models.bert.modeling_bert',
    );
  }
  const py = await findInterpreter({ explicit: opts.python, cwd: opts.cwd });
  const env = {
    ...withBackendOnPath(process.env),
    // `python -c` puts its current directory first on sys.path: never the user's workspace (a torch.py or
    // json.py there would run). Python 3.11+ also leaves it out entirely with PYTHONSAFEPATH.
    PYTHONSAFEPATH: '1',
  };
  const out = await new Promise<string>((resolve, reject) => {
    // From a neutral folder, the current one off sys.path: `--module pkg.sub` must not run a ./pkg of the workspace.
    const child = spawn(py.path, isolatedArgs(LOOKUP, module), {
      cwd: neutralCwd(),
      env: probeEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else
        reject(
          new QdqError(
            'import',
            `looking up ${module} with ${py.path} failed (exit ${code})`,
            'check that the library imports in that interpreter',
            stderr.trim().split('\n').slice(-5).join('\n'),
          ),
        );
    });
  });
  let answer: { file?: string; error?: { kind: string; message: string; hint: string } };
  try {
    answer = JSON.parse(out.trim().split('\n').pop() ?? '');
  } catch {
    throw new QdqError('internal', `unexpected answer while looking up ${module}: ${out.slice(0, 200)}`, 'report this');
  }
  if (answer.error)
    throw new QdqError(answer.error.kind as 'config', `${answer.error.message} (asked ${py.path})`, answer.error.hint);
  const file = answer.file as string;
  // Read like every workspace file: a regular file of bounded size, without blocking (a library folder inside the
  // workspace may hold a FIFO or a link to /dev/zero).
  let text: string | undefined;
  try {
    text = await readRegularFile(file, MAX_SOURCE_BYTES);
  } catch (err) {
    throw new QdqError('import', `${module}: ${(err as Error).message}`, 'point the import at a regular Python file');
  }
  if (text === undefined) throw new QdqError('import', `${module}: ${file} disappeared`, 'try again');
  return { module, file, text, python: py.path };
}
