// The error type lives in server/src/common (shared by the CLI, the library lookups and the pipeline).
export * from '../common/errors';
