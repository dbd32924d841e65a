// Reading files of the user's workspace from the language server. A project is opened before it is trusted, so
// anything it contains may be hostile: `qdq-out/calibration.json` may be a symlink to /dev/stdin (blocks forever),
// to /dev/zero (endless) or a FIFO. Every read here is asynchronous (the event loop keeps answering), opens
// without blocking (O_NONBLOCK: a FIFO with no writer does not hang a libuv thread), accepts regular files only
// (fstat on the opened handle, so a symlink swapped in between cannot slip through) and stops at a size cap.
import { readRegularFile, RegularFileError, MAX_RESULTS_BYTES } from '../common/files';

/** Caps per kind of file the server reads; far above what qdq writes (histograms included), far below memory. */
export { MAX_RESULTS_BYTES };
export const MAX_CONFIG_BYTES = 1024 * 1024;

export { RegularFileError as WorkspaceFileError };

/** The one guarded reader (common/files.ts readRegularFile), under the name the server's features use. */
export const readWorkspaceFile = readRegularFile;

/** Like readWorkspaceFile, but a file that is not acceptable is logged and treated as absent. */
export async function readWorkspaceFileOrLog(
  file: string,
  maxBytes: number,
  log: (line: string) => void,
): Promise<string | undefined> {
  try {
    return await readWorkspaceFile(file, maxBytes);
  } catch (err) {
    log(`qdq: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}
