// Interpreter discovery lives in server/src/common (shared by the CLI, the library lookups and the pipeline).
export * from '../common/interpreter';
