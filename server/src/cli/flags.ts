// The command table and its parser live in server/src/common/commandLine.ts (the pipeline's front end uses
// them too, from below the CLI); this is the CLI's name for them.
export * from '../common/commandLine';
