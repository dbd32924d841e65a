// A stand-in for ms-python.python that implements only the part of its public API qdq reads
// (exports.environments.getActiveEnvironmentPath / onDidChangeActiveEnvironmentPath). The real extension
// cannot be installed here (no marketplace access); this lets the code-server test check that the qdq client
// picks the interpreter the Python extension selected.
const vscode = require('vscode');

function activate() {
  const changed = new vscode.EventEmitter();
  return {
    environments: {
      getActiveEnvironmentPath: () => ({ id: 'qdq-test', path: process.env.QDQ_FAKE_PYTHON || 'python' }),
      onDidChangeActiveEnvironmentPath: changed.event,
    },
  };
}

module.exports = { activate };
