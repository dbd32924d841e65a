// Rewrites package.json's contributes.configuration from the server's settings schema
// (server/src/settings.ts) and contributes.commands from the command registry (server/src/protocol/commands.ts),
// so the Settings UI, the palette and the server agree. Run after changing either:
//   npx tsc -p . && node out/client/src/syncManifest.js
// test/editors/vscode/client.test.ts and test/protocol/structure.test.ts fail while they differ.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settingsContribution } from '../../server/src/settings';
import { commandsContribution } from '../../server/src/protocol/commands';

export function syncManifest(repoRoot: string): boolean {
  const file = path.join(repoRoot, 'package.json');
  const before = fs.readFileSync(file, 'utf8');
  const pkg = JSON.parse(before);
  pkg.contributes.commands = commandsContribution();
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
    syncManifest(process.cwd())
      ? 'package.json: contributes.commands / configuration updated'
      : 'package.json: already in sync',
  );
}
