#!/usr/bin/env node
// Thin launcher: the CLI lives in server/src/cli (compiled to out/).
// The exit waits for stdout and stderr to drain: process.exit() right after a large write through a pipe
// (`qdq quantize big.py | less`) would drop everything past the pipe's 64 KiB buffer, with exit code 0.
function finish(code) {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.destroyed || !stream.writable) done();
    else stream.write('', done);
  }
}
// A reader that goes away early (`qdq check ... | head`) is not an error of ours: stop quietly.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err) => {
    if (err && err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
require('../out/server/src/cli/main.js')
  .main(process.argv.slice(2))
  .then(finish, (err) => {
    console.error(`qdq: internal error: ${err && err.message ? err.message : err}`);
    finish(2);
  });
