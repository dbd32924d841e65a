// Where a command name resolves on PATH, without running anything (pure file-system checks, tested without VS Code).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where a bare command name resolves on PATH (like `command -v`), or undefined; paths are returned as given. */
export function resolveOnPath(command: string, envPath = process.env.PATH ?? ''): string | undefined {
  if (command.includes('/')) return fs.existsSync(command) ? command : undefined;
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
