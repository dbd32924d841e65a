// A standing fuzz harness for the language server (issue 14): seeded random incremental edits over real model
// sources, sent to the real server over stdio, with hovers, code actions, resolves and the pure commands
// (qdq.quantizeFile, qdq.removeAllQuantizers) in between. Checks, after every step:
// - liveness: every request is answered within REQUEST_TIMEOUT_MS and the server stays up;
// - edits parse: an edit the server hands out (code action, resolved action, applyEdit of a command) leaves a
//   text without syntax errors when the text had none;
// - incremental == fresh: at the end of each document, the diagnostics of the edited document equal those of
//   the same text opened fresh;
// - bounded memory: the server runs with a capped V8 heap (HEAP_CAP_MB; a leak ends it, which liveness reports),
//   and its RSS is sampled (peak reported).
// Everything sent depends only on the seed and the sources, so a failure names the seed and the index of the edit
// after which it showed; `node out/bench/fuzzReplay.js --seed S --until N` reruns the same run up to it.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';
import type { CodeAction, Diagnostic, Hover, WorkspaceEdit } from 'vscode-languageserver-protocol';
import { LineIndex, parsePython } from '../../server/src/analysis';
import { TestClient, fileUri, REPO } from '../protocol/lspClient';

export const REQUEST_TIMEOUT_MS = 15000;
export const HEAP_CAP_MB = 384;

export interface FuzzSource {
  name: string;
  text: string;
}

/** Python sources to edit, and the kinds that could not be found (named in the output, never silently left out). */
export function fuzzSources(): { sources: FuzzSource[]; missing: string[] } {
  const files: string[] = [];
  const missing: string[] = [];
  const torchvision = '/usr/lib/python3/dist-packages/torchvision/models';
  if (fs.existsSync(torchvision)) files.push(...pyFiles(torchvision, false));
  else missing.push(`torchvision sources (${torchvision}: apt install python3-torchvision)`);
  const transformers = transformersModels();
  if (transformers) files.push(...['bert', 'gpt2', 'vit'].flatMap((m) => pyFiles(path.join(transformers, m), false)));
  else missing.push('transformers sources (python3 cannot import transformers)');
  files.push(...pyFiles(path.join(REPO, 'examples'), true), ...pyFiles(path.join(REPO, 'test', 'fixtures'), true));
  const sources = files
    .filter((f) => fs.statSync(f).size < 400 * 1024)
    .map((f) => ({ name: path.relative(REPO, f).startsWith('..') ? f : path.relative(REPO, f), text: read(f) }));
  return { sources, missing };
}

function read(f: string): string {
  return fs.readFileSync(f, 'utf8');
}

function pyFiles(dir: string, recursive: boolean): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && recursive && e.name !== 'node_modules' && !e.name.startsWith('.'))
      out.push(...pyFiles(p, true));
    else if (e.isFile() && e.name.endsWith('.py')) out.push(p);
  }
  return out;
}

/** transformers/models of the python3 on PATH, if it imports. */
function transformersModels(): string | undefined {
  try {
    const dir = execFileSync(
      'python3',
      ['-c', 'import transformers,os;print(os.path.dirname(transformers.__file__))'],
      {
        encoding: 'utf8',
        timeout: 60000,
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    ).trim();
    const models = path.join(dir, 'models');
    return fs.existsSync(models) ? models : undefined;
  } catch {
    return undefined;
  }
}

/** Fragments typed into the sources: operators, calls the rules look at, brackets, quotes, line breaks. */
const FRAGMENTS = [
  'x',
  ' + ',
  ' @ ',
  '(',
  ')',
  '[',
  ']',
  ':',
  ',',
  '"',
  "'''",
  '#',
  '\n',
  '\n        ',
  '    ',
  '\t',
  '\r',
  '\r\n',
  'é',
  'torch.cumsum(x.int(), 1)',
  'self.conv1(x)',
  'x = x + identity\n',
  'q @ k.transpose(-1, -2)',
  'nn.Conv2d(3, 8, 3)',
  'torch.nonzero(mask)',
  'x[mask] = 0',
  'def f(self, x):\n        return x\n',
  'import torch\n',
  'class A(nn.Module):\n    pass\n',
];

/** The seeded generator (same sequence on every machine). */
export class Prng {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 1;
  }
  next(n: number): number {
    // xorshift32
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x >>> 0;
    return this.x % Math.max(1, n);
  }
}

/** An offset that does not split a CRLF pair or a surrogate pair (LSP positions cannot name those). */
function safeOffset(text: string, at: number): number {
  while (
    at > 0 &&
    at < text.length &&
    ((text.charCodeAt(at - 1) === 13 && text.charCodeAt(at) === 10) ||
      (text.charCodeAt(at) >= 0xdc00 && text.charCodeAt(at) <= 0xdfff))
  )
    at++;
  return at;
}

export interface FuzzEdit {
  start: number;
  end: number;
  insert: string;
}

export function randomEdit(text: string, rnd: Prng): FuzzEdit {
  const start = safeOffset(text, rnd.next(text.length + 1));
  const kind = rnd.next(10);
  if (kind < 6) return { start, end: start, insert: FRAGMENTS[rnd.next(FRAGMENTS.length)] };
  const end = safeOffset(text, Math.min(text.length, start + 1 + rnd.next(kind < 9 ? 8 : 200)));
  return { start, end, insert: kind === 8 ? FRAGMENTS[rnd.next(FRAGMENTS.length)] : '' };
}

/** Applies LSP TextEdits (relative to `text`) with LSP's line breaks (LF, CRLF, lone CR). */
function applyEdits(text: string, edits: { range: { start: Pos; end: Pos }; newText: string }[]): string {
  const lines = new LineIndex(text);
  const spans = edits
    .map((e, i) => ({ a: lines.offsetAt(e.range.start), b: lines.offsetAt(e.range.end), t: e.newText, i }))
    .sort((x, y) => x.a - y.a || x.i - y.i);
  let out = '';
  let last = 0;
  for (const s of spans) {
    if (s.a < last) throw new Error('overlapping edits');
    out += text.slice(last, s.a) + s.t;
    last = s.b;
  }
  return out + text.slice(last);
}
interface Pos {
  line: number;
  character: number;
}

function editsFor(
  edit: WorkspaceEdit | undefined,
  uri: string,
): { range: { start: Pos; end: Pos }; newText: string }[] {
  if (!edit) return [];
  const out = [...(edit.changes?.[uri] ?? [])];
  for (const c of edit.documentChanges ?? [])
    if ('textDocument' in c && c.textDocument.uri === uri) for (const t of c.edits) if ('newText' in t) out.push(t);
  return out;
}

export interface FuzzOptions {
  seed: number;
  /** Edits in all; the run stops earlier when `budgetMs` is spent. */
  edits: number;
  budgetMs?: number;
  /** Stop after this edit (replay). */
  until?: number;
  /** Requests after every `requestEvery` edits. */
  requestEvery?: number;
  /** A document is reset to a fresh source after this many edits. */
  editsPerDocument?: number;
  log?: (line: string) => void;
}

export interface FuzzResult {
  seed: number;
  edits: number;
  requests: number;
  documents: number;
  seconds: number;
  editsPerSecond: number;
  peakRssMb: number;
  /** RSS after the first document and at the end. */
  rssAfterFirstMb: number;
  rssEndMb: number;
  /** Edits handed out by the server that were applied and parsed (code actions, resolves, commands). */
  editsChecked: number;
  /** Documents whose incremental diagnostics were compared with a fresh open. */
  comparisons: number;
  missing: string[];
  failure?: { seed: number; edit: number; source: string; message: string };
}

class FuzzFailure extends Error {}

function rssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FuzzFailure(`no answer to ${what} within ${REQUEST_TIMEOUT_MS} ms`)),
        REQUEST_TIMEOUT_MS,
      );
    }),
  ]);
}

/** Diagnostics as comparable lines; the document's own file name (doc1.py vs fresh1.py) reads as FILE. */
function describeDiagnostics(ds: Diagnostic[], fileName: string): string[] {
  return ds
    .map(
      (d) =>
        `${d.code} ${d.range.start.line}:${d.range.start.character}-${d.range.end.line}:${d.range.end.character} ${d.severity} ${String(
          typeof d.message === 'string' ? d.message : d.message.value,
        )
          .split(fileName)
          .join('FILE')}`,
    )
    .sort();
}

/** Runs the fuzz loop against a fresh server; never throws for a finding (it is returned as `failure`). */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const log = opts.log ?? (() => undefined);
  const { sources, missing } = fuzzSources();
  const rnd = new Prng(opts.seed);
  const requestEvery = opts.requestEvery ?? 8;
  const perDoc = opts.editsPerDocument ?? 400;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-fuzz-'));
  // The server's heap is capped: a leak across the run ends it, and liveness reports that.
  const savedOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${savedOptions ?? ''} --max-old-space-size=${HEAP_CAP_MB}`.trim();
  let client: TestClient;
  try {
    client = await TestClient.start();
  } finally {
    if (savedOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = savedOptions;
  }
  const pid = client.child.pid;
  const started = Date.now();
  let edits = 0;
  let requests = 0;
  let documents = 0;
  let peak = 0;
  let rssAfterFirst = 0;
  let editsChecked = 0;
  let comparisons = 0;
  let source = '';
  let failure: FuzzResult['failure'];
  const alive = (what: string) => {
    if (client.exited)
      throw new FuzzFailure(
        `the server exited (${JSON.stringify(client.exited)}) ${what}; stderr: ${client.stderr.slice(-1500)}`,
      );
  };
  const request = async <R>(method: string, params: unknown): Promise<R> => {
    requests++;
    const r = await within(client.request<R>(method, params), method);
    alive(`after ${method}`);
    return r;
  };
  const checkParses = (before: string, edits: { range: { start: Pos; end: Pos }; newText: string }[], what: string) => {
    if (!edits.length || parsePython(before).rootNode.hasError) return;
    const after = applyEdits(before, edits);
    editsChecked++;
    if (parsePython(after).rootNode.hasError) throw new FuzzFailure(`${what} leaves a text that no longer parses`);
  };
  try {
    let done = false;
    for (let d = 0; !done; d++) {
      const src = sources[rnd.next(sources.length)];
      source = src.name;
      const uri = fileUri(path.join(tmp, `doc${d}.py`));
      let text = src.text;
      let version = 1;
      await client.open(uri, text);
      documents++;
      for (let k = 0; k < perDoc; k++) {
        done =
          edits >= opts.edits ||
          (opts.until !== undefined && edits >= opts.until) ||
          (opts.budgetMs !== undefined && Date.now() - started > opts.budgetMs);
        if (done) break;
        const e = randomEdit(text, rnd);
        const lines = new LineIndex(text);
        const range = { start: lines.positionAt(e.start), end: lines.positionAt(e.end) };
        text = text.slice(0, e.start) + e.insert + text.slice(e.end);
        await client.change(uri, ++version, [{ range, text: e.insert }]);
        edits++;
        if (k % requestEvery !== requestEvery - 1) continue;
        // Random edits soon leave no text that parses, and the server's edits are checked on texts that do:
        // now and then the document goes back to its source (a whole-text change) before the requests.
        if (rnd.next(3) === 0) {
          text = src.text;
          await client.change(uri, ++version, [{ text }]);
        }
        await probe(uri, text, rnd, request, checkParses, client);
      }
      // Incremental == fresh: the edited document's diagnostics against the same text opened anew.
      const inc = await within(client.waitForVersion(uri, version), 'diagnostics of the edited document');
      const freshUri = fileUri(path.join(tmp, `fresh${d}.py`));
      await client.open(freshUri, text);
      const fresh = await within(client.waitForVersion(freshUri, 1), 'diagnostics of the fresh document');
      const a = describeDiagnostics(inc.diagnostics, path.basename(fileURLToPath(uri)));
      const b = describeDiagnostics(fresh.diagnostics, path.basename(fileURLToPath(freshUri)));
      if (JSON.stringify(a) !== JSON.stringify(b))
        throw new FuzzFailure(
          `incremental and fresh diagnostics differ: only incremental ${JSON.stringify(a.filter((x) => !b.includes(x)).slice(0, 3))}, only fresh ${JSON.stringify(b.filter((x) => !a.includes(x)).slice(0, 3))}`,
        );
      comparisons++;
      for (const u of [uri, freshUri])
        await client.conn.sendNotification('textDocument/didClose', { textDocument: { uri: u } });
      const rss = rssMb(pid);
      peak = Math.max(peak, rss);
      if (d === 0) rssAfterFirst = rss;
      log(`fuzz: ${edits} edits, ${requests} requests, ${documents} documents, server RSS ${rss.toFixed(0)} MB`);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    failure = { seed: opts.seed, edit: edits, source, message };
    log(`fuzz: FAILED at edit ${edits} (seed ${opts.seed}, source ${source}): ${message}`);
    log(`fuzz: replay with: node out/bench/fuzzReplay.js --seed ${opts.seed} --until ${edits}`);
  }
  const rssEnd = rssMb(pid);
  peak = Math.max(peak, rssEnd);
  await client.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  const seconds = (Date.now() - started) / 1000;
  return {
    seed: opts.seed,
    edits,
    requests,
    documents,
    seconds,
    editsPerSecond: edits / seconds,
    peakRssMb: peak,
    rssAfterFirstMb: rssAfterFirst,
    rssEndMb: rssEnd,
    editsChecked,
    comparisons,
    missing,
    failure,
  };
}

/** Hover, code actions (with one resolve) and now and then a pure command, each checked. */
async function probe(
  uri: string,
  text: string,
  rnd: Prng,
  request: <R>(method: string, params: unknown) => Promise<R>,
  checkParses: (before: string, edits: { range: { start: Pos; end: Pos }; newText: string }[], what: string) => void,
  client: TestClient,
): Promise<void> {
  const lines = new LineIndex(text);
  const at = lines.positionAt(rnd.next(text.length + 1));
  await request<Hover | null>('textDocument/hover', { textDocument: { uri }, position: at });
  const line = at.line;
  const actions = await request<CodeAction[]>('textDocument/codeAction', {
    textDocument: { uri },
    range: { start: { line, character: 0 }, end: { line: line + 3, character: 0 } },
    context: { diagnostics: client.diagnostics.get(uri)?.diagnostics ?? [] },
  });
  for (const a of actions) checkParses(text, editsFor(a.edit, uri), `code action "${a.title}"`);
  const unresolved = actions.filter((a) => !a.edit);
  if (unresolved.length) {
    const a = unresolved[rnd.next(unresolved.length)];
    const r = await request<CodeAction>('codeAction/resolve', a);
    checkParses(text, editsFor(r.edit, uri), `resolved code action "${a.title}"`);
  }
  if (rnd.next(6) === 0) {
    const command = rnd.next(2) === 0 ? 'qdq.quantizeFile' : 'qdq.removeAllQuantizers';
    const before = client.appliedEdits.length;
    await request('workspace/executeCommand', { command, arguments: [{ uri }] });
    for (const edit of client.appliedEdits.slice(before)) checkParses(text, editsFor(edit, uri), command);
    client.appliedEdits.length = 0;
  }
}
