// Issue 13's structure rules for server/src and client/src: no function over 120 lines in any file, one command
// registry that the manifest follows, and server.ts as wiring only.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as ts from 'typescript';
import { COMMANDS, commandsContribution, SERVER_COMMAND_IDS } from '../../server/src/protocol/commands';
import { Commands } from '../../server/src/protocol/lsp_ext';

const REPO = process.cwd();
const MAX_FUNCTION_LINES = 120;
/** Every TypeScript file of the language server, the CLI, the pipeline and the client. */
const CHECKED = ['server/src', 'client/src'];

function sources(entry: string): string[] {
  const full = path.join(REPO, entry);
  if (fs.statSync(full).isFile()) return [full];
  return fs
    .readdirSync(full, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(full, f));
}

/** Every function, method, arrow function and accessor of a file with its length in lines. */
export function functionLengths(file: string): { name: string; line: number; lines: number }[] {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; line: number; lines: number }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = node as ts.Node & { name?: ts.Node };
      found.push({
        name: named.name ? named.name.getText(sf) : '(anonymous)',
        line: start + 1,
        lines: end - start + 1,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

test(`no function over ${MAX_FUNCTION_LINES} lines in server/src and client/src`, () => {
  const long = CHECKED.flatMap(sources).flatMap((file) =>
    functionLengths(file)
      .filter((f) => f.lines > MAX_FUNCTION_LINES)
      .map((f) => `${path.relative(REPO, file)}:${f.line} ${f.name} (${f.lines} lines)`),
  );
  assert.deepEqual(long, []);
});

test('the length check sees a long function (it can fail)', () => {
  const file = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'qdq-len-')), 'long.ts');
  fs.writeFileSync(file, `export function long() {\n${'  console.log(1);\n'.repeat(130)}}\n`);
  assert.deepEqual(
    functionLengths(file).map((f) => [f.name, f.lines]),
    [['long', 132]],
  );
});

test('server.ts is wiring only: its one function registers the method modules', () => {
  const lengths = functionLengths(path.join(REPO, 'server/src/server.ts'));
  const start = lengths.find((f) => f.name === 'startServer');
  assert.ok(start && start.lines <= 20, `startServer has ${start?.lines} lines`);
});

test('package.json contributes.commands is the command registry', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.contributes.commands, commandsContribution());
  // Every id in lsp_ext's Commands has its one entry, and the server answers exactly the server-side ones.
  for (const id of Object.values(Commands)) assert.equal(COMMANDS.filter((c) => c.id === id).length, 1, id);
  assert.deepEqual(
    [...SERVER_COMMAND_IDS].sort(),
    COMMANDS.filter((c) => c.handler === 'server')
      .map((c) => c.id)
      .sort(),
  );
  // Hidden commands are kept out of the palette by a menu entry.
  const palette: { command: string; when: string }[] = pkg.contributes.menus.commandPalette;
  for (const c of COMMANDS.filter((c) => c.hidden))
    assert.ok(
      palette.some((m) => m.command === c.id && m.when === 'false'),
      `${c.id} hidden from the palette`,
    );
  // Every command that runs user code is a backend command the server gates on trust.
  for (const c of COMMANDS.filter((c) => c.pipeline)) assert.equal(c.runsUserCode, true, c.id);
});

/** A .vscodeignore line as a regular expression (the subset of glob syntax the file uses: *, ** and literals). */
function globRegExp(pattern: string): RegExp {
  const body = pattern
    .split('**')
    .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

test('the packaged extension keeps docs/rules.md, which every diagnostic links to', async () => {
  const patterns = fs
    .readFileSync(path.join(REPO, '.vscodeignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.ok(globRegExp('docs/DESIGN.md').test('docs/DESIGN.md'));
  const dropping = patterns.filter((p) => globRegExp(p).test('docs/rules.md'));
  assert.deepEqual(dropping, [], '.vscodeignore patterns that would drop docs/rules.md');
  const { ruleDocHref } = await import('../../server/src/features/diagnostics');
  const href = new URL(ruleDocHref('TRT001'));
  assert.equal(href.hash, '#trt001');
  assert.ok(fs.existsSync(href.pathname), `${href.pathname} exists`);
});
