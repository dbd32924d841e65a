#!/usr/bin/env node
// Starts the qdq language server (pass --stdio for editors other than VS Code).
require('../out/server/src/server.js').startServer();
