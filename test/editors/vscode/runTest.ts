// Runs the extension-host suite (suite/) in VS Code desktop through @vscode/test-electron.
// VS Code cannot be downloaded on machines without access to update.code.visualstudio.com, so this
// runner never downloads: it needs a local VS Code executable in QDQ_VSCODE_EXECUTABLE
// (e.g. /usr/share/code/code, or .../Visual Studio Code.app/Contents/MacOS/Electron) and says so
// when none is given. On Linux without a display, wrap it in `xvfb-run -a`.
// The same suite runs in code-server (a real VS Code workbench) from test/editors/code-server.test.ts.
//
//   QDQ_VSCODE_EXECUTABLE=/usr/share/code/code npm run test:vscode
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh copy of the bundled example, so the run never edits examples/ in the repository. */
export function makeTestWorkspace(repoRoot: string, destRoot: string, example = 'digits-cnn'): string {
  const src = path.join(repoRoot, 'examples', example);
  if (!fs.existsSync(path.join(src, 'pyproject.toml'))) throw new Error(`bundled example ${src} is missing`);
  const dest = path.join(destRoot, example);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(destRoot, { recursive: true });
  fs.cpSync(src, dest, {
    recursive: true,
    filter: (p) => !/(^|[\\/])(qdq-out|__pycache__|qdq_quant\.py)$/.test(p) || p === src,
  });
  // A file with a TensorRT problem, for the diagnostics checks (the example itself is clean).
  fs.copyFileSync(path.join(repoRoot, 'test', 'fixtures', 'editors', 'trt_issue.py'), path.join(dest, 'trt_issue.py'));
  return dest;
}

export interface SuiteResults {
  stats: { passes: number; failures: number; pending?: number; tests?: number };
  failures: { fullTitle?: string; title?: string; err?: { message?: string } }[];
  passes?: { fullTitle?: string }[];
}

export function readSuiteResults(file: string): SuiteResults | undefined {
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as SuiteResults;
}

async function main(): Promise<number> {
  const repoRoot = process.cwd();
  const executable = process.env.QDQ_VSCODE_EXECUTABLE;
  if (!executable) {
    console.log(
      'test:vscode: skipped: no VS Code executable given. Set QDQ_VSCODE_EXECUTABLE to a local VS Code ' +
        '(e.g. /usr/share/code/code); @vscode/test-electron cannot download one on this machine. ' +
        'The same suite runs in code-server: node --test out/test/editors/code-server.test.js',
    );
    return process.env.NODE_TEST_CONTEXT ? 0 : 2;
  }
  if (!fs.existsSync(executable)) {
    console.error(`test:vscode: QDQ_VSCODE_EXECUTABLE=${executable} does not exist`);
    return 2;
  }
  const { runTests } = require('@vscode/test-electron') as typeof import('@vscode/test-electron');
  const runDir = path.join(repoRoot, 'test-results', 'vscode-desktop');
  const workspace = makeTestWorkspace(repoRoot, path.join(runDir, 'ws'));
  const results = path.join(runDir, 'suite-results.json');
  fs.rmSync(results, { force: true });
  try {
    await runTests({
      vscodeExecutablePath: executable,
      extensionDevelopmentPath: repoRoot,
      extensionTestsPath: path.join(repoRoot, 'out', 'test', 'editors', 'vscode', 'suite', 'index.js'),
      extensionTestsEnv: { QDQ_TEST_RESULTS: results },
      launchArgs: [workspace, '--disable-extensions', `--user-data-dir=${path.join(os.tmpdir(), 'qdq-vscode-user')}`],
    });
  } catch (err) {
    console.error(`test:vscode: VS Code exited with an error: ${(err as Error).message}`);
  }
  // The exit code of the extension host is not trustworthy; the results file is.
  const parsed = readSuiteResults(results);
  if (!parsed) {
    console.error(`test:vscode: no results file ${results}: the suite did not run`);
    return 1;
  }
  for (const f of parsed.failures) console.error(`FAIL ${f.fullTitle ?? f.title}: ${f.err?.message}`);
  console.log(`test:vscode: ${parsed.stats.passes} passed, ${parsed.stats.failures} failed`);
  return parsed.stats.failures === 0 && parsed.stats.passes > 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`test:vscode: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
