// onnx's own checker with strict shape inference (python3's onnx package), for tests of graphs qdq writes.
import { spawnSync } from 'child_process';

export const hasOnnx = spawnSync('python3', ['-c', 'import onnx'], { stdio: 'ignore', timeout: 60_000 }).status === 0;

export function onnxCheck(file: string): { ok: boolean; message: string } {
  const r = spawnSync(
    'python3',
    ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return { ok: r.status === 0, message: (r.stderr || '').split('\n').slice(-3).join('\n') };
}
