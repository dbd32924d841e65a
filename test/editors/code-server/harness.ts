// Drives code-server 4.100.3 (a real VS Code 1.100 workbench with a Node extension host) for the editor
// tests: starts it on 127.0.0.1 with its own config, user data and extensions folders, loads the extension
// under development through the `payload` URL parameter, and opens the workbench in Debian's chromium via
// playwright-core. Install code-server with test/editors/code-server/install.sh.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** Flags that let Debian's chromium run headless as root in a container without GPU or network. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function codeServerEntry(repoRoot: string): string {
  return path.join(
    repoRoot,
    'test',
    'editors',
    'code-server',
    'node_modules',
    'code-server',
    'out',
    'node',
    'entry.js',
  );
}

/** Why the code-server tests cannot run here, or undefined when they can. */
export function codeServerUnavailable(repoRoot: string): string | undefined {
  if (!fs.existsSync(codeServerEntry(repoRoot))) {
    return 'code-server is not installed: run bash test/editors/code-server/install.sh (about 1.5 GB, needs libkrb5-dev, pkg-config, ripgrep, g++)';
  }
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} is missing: apt-get install chromium`;
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function httpStatus(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
  });
}

export interface CodeServer {
  port: number;
  origin: string;
  log: string;
  stop(): Promise<void>;
  /** Workbench URL opening `folder`, loading the extension at `devPath` and, when given, running `testsPath`. */
  url(folder: string, devPath?: string, testsPath?: string): string;
}

/** Starts code-server bound to 127.0.0.1 on a free port; every state folder lives under `stateDir`. */
export async function startCodeServer(
  repoRoot: string,
  stateDir: string,
  env: NodeJS.ProcessEnv = {},
  opts: { workspaceTrust?: boolean } = {},
): Promise<CodeServer> {
  const port = await freePort();
  const userData = path.join(stateDir, 'user-data');
  const extensions = path.join(stateDir, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.mkdirSync(extensions, { recursive: true });
  const config = path.join(stateDir, 'config.yaml');
  fs.writeFileSync(config, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  // Trust is granted up front (the test workspace is a fresh copy of a bundled example), unless the test is
  // about restricted mode: then every folder opens untrusted.
  const trust = opts.workspaceTrust === true;
  fs.writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'security.workspace.trust.enabled': trust,
        'security.workspace.trust.startupPrompt': 'never',
        'security.workspace.trust.untrustedFiles': 'open',
        'workbench.startupEditor': 'none',
        'telemetry.telemetryLevel': 'off',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'git.enabled': false,
        'git.openRepositoryInParentFolders': 'never',
      },
      null,
      2,
    ),
  );
  const log = path.join(stateDir, 'code-server.log');
  const out = fs.openSync(log, 'w');
  const child: ChildProcess = spawn(
    process.execPath,
    [
      codeServerEntry(repoRoot),
      '--config',
      config,
      '--user-data-dir',
      userData,
      '--extensions-dir',
      extensions,
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--auth',
      'none',
      '--disable-telemetry',
      '--disable-update-check',
      ...(trust ? [] : ['--disable-workspace-trust']),
      '--disable-getting-started-override',
    ],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: false },
  );
  fs.closeSync(out);
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while ((await httpStatus(`${origin}/healthz`)) !== 200) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}; see ${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`code-server did not answer on ${origin} within 60 s; see ${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    port,
    origin,
    log,
    url(folder, devPath, testsPath) {
      const remote = (p: string) => `vscode-remote://127.0.0.1:${port}${p}`;
      let url = `${origin}/?folder=${encodeURIComponent(folder)}`;
      const payload: [string, string][] = [];
      // On 4.100 the extension under development is only picked up as a vscode-remote:// URI.
      if (devPath) payload.push(['extensionDevelopmentPath', remote(devPath)]);
      if (testsPath) payload.push(['extensionTestsPath', remote(testsPath)]);
      if (payload.length) url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
      return url;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** Opens the workbench and waits until it is interactive. */
export async function openWorkbench(browser: Browser, url: string, consoleErrors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (m) => {
    // Offline noise: the marketplace (open-vsx.org) cannot be reached here.
    if (m.type() === 'error' && !/open-vsx|ENOTFOUND|net::ERR_/.test(m.text()))
      consoleErrors.push(m.text().slice(0, 300));
  });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
  return page;
}

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
