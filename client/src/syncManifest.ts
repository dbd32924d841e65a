// Rewrites package.json's contributes.configuration from the server's settings schema
// (server/src/settings.ts), so the Settings UI and the server agree. Run after changing the schema:
//   npx tsc -p . && node out/client/src/syncManifest.js
// test/editors/vscode/client.test.ts fails while the two differ.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settingsContribution } from '../../server/src/settings';

export function syncManifest(repoRoot: string): boolean {
  const file = path.join(repoRoot, 'package.json');
  const before = fs.readFileSync(file, 'utf8');
  const pkg = JSON.parse(before);
  pkg.contributes.configuration = { title: 'QDQ', properties: settingsContribution() };
  const after = JSON.stringify(pkg, null, 2) + '\n';
  if (after === before) return false;
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, after);
  fs.renameSync(tmp, file);
  return true;
}

if (require.main === module) {
  console.log(
    syncManifest(process.cwd()) ? 'package.json: contributes.configuration updated' : 'package.json: already in sync',
  );
}
