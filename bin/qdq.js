#!/usr/bin/env node
// Thin launcher: the CLI lives in server/src/cli (compiled to out/).
require('../out/server/src/cli/main.js').main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(`qdq: internal error: ${err && err.message ? err.message : err}`); process.exit(2); }
);
