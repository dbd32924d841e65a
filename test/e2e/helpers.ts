// Runs the real `qdq` launcher (bin/qdq.js) on copies of project folders, so reports and ONNX files land in
// temp folders, never in the source tree.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const repoRoot = process.cwd();

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function copyProject(src: string, skip: string[] = ['qdq-out', '__pycache__']): string {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), `qdq-e2e-${path.basename(src)}-`));
  fs.cpSync(src, dest, { recursive: true, filter: (f) => !skip.includes(path.basename(f)) });
  return dest;
}

export function runQdq(
  args: string[],
  opts: { onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/qdq.js'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(String(d), child);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 570_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function pythonWith(modules: string[], candidates = ['python3', '/usr/bin/python3']): string | null {
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
}

export function readReport(projectDir: string, outDir = 'qdq-out'): any {
  return JSON.parse(fs.readFileSync(path.join(projectDir, outDir, 'report.json'), 'utf8'));
}

/** Files a failed or cancelled run must not leave behind: temp files from atomic writes. */
export function leftoverTempFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true } as any) as unknown as fs.Dirent[]) {
    if (/\.tmp$/.test(e.name)) out.push(e.name);
  }
  return out;
}
