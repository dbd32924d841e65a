// Which project a file belongs to: the nearest folder upwards with a pyproject.toml (the CLI's rule too).
import * as fs from 'fs';
import * as path from 'path';

/** The nearest folder upwards that has a pyproject.toml, else the file's own folder. */
export function findProjectDir(file: string): string {
  const start = path.dirname(path.resolve(file));
  let dir = start;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'pyproject.toml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return start;
    dir = parent;
  }
}
