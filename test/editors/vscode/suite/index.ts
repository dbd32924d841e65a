// Entry point of the extension-host test run (extensionTestsPath): VS Code (desktop through
// @vscode/test-electron, or code-server through its `payload` route) loads this module inside the
// extension host and calls run(). Results go to a JSON file (mocha's JSON reporter) because the host's
// exit code does not reflect failures (a throwing run() still logs "exited with code 0" in code-server).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where the mocha JSON results are written: $QDQ_TEST_RESULTS, else a file in the temp folder. */
export function resultsFile(): string {
  return process.env.QDQ_TEST_RESULTS || path.join(os.tmpdir(), 'qdq-vscode-suite.json');
}

export async function run(): Promise<void> {
  // Loaded lazily: this file is also picked up (and must do nothing) when `node --test out/test/` runs.
  const Mocha = require('mocha') as typeof import('mocha');
  const out = resultsFile();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.rmSync(out, { force: true });
  const mocha = new Mocha({ ui: 'tdd', timeout: 600_000, reporter: 'json', reporterOptions: { output: out } });
  // QDQ_TEST_SUITE=untrusted runs the restricted-mode checks (the workspace must be opened untrusted).
  mocha.addFile(
    path.join(__dirname, process.env.QDQ_TEST_SUITE === 'untrusted' ? 'untrusted.suite.js' : 'qdq.suite.js'),
  );
  await new Promise<void>((resolve, reject) => {
    try {
      mocha.run((failures) =>
        failures > 0 ? reject(new Error(`${failures} extension-host tests failed (see ${out})`)) : resolve(),
      );
    } catch (err) {
      // A suite that fails to load never reaches the reporter: leave a results file saying so.
      fs.writeFileSync(
        out,
        JSON.stringify({
          stats: { failures: 1, passes: 0 },
          failures: [{ title: 'load', err: { message: String(err) } }],
        }),
      );
      reject(err);
    }
  });
}
