// Reading files of the user's workspace from the language server. A project is opened before it is trusted, so
// anything it contains may be hostile: `qdq-out/calibration.json` may be a symlink to /dev/stdin (blocks forever),
// to /dev/zero (endless) or a FIFO. Every read here is asynchronous (the event loop keeps answering), opens
// without blocking (O_NONBLOCK: a FIFO with no writer does not hang a libuv thread), accepts regular files only
// (fstat on the opened handle, so a symlink swapped in between cannot slip through) and stops at a size cap.
import * as fs from 'fs';

/** Caps per kind of file the server reads; far above what qdq writes (histograms included), far below memory. */
export const MAX_RESULTS_BYTES = 64 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 1024 * 1024;

export class WorkspaceFileError extends Error {}

/**
 * The text of a regular file of at most `maxBytes`, or undefined when there is no such file. Throws a
 * WorkspaceFileError (with a message naming the file and the problem) for anything that is not a regular file
 * or is too large.
 */
export async function readWorkspaceFile(file: string, maxBytes: number): Promise<string | undefined> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new WorkspaceFileError(`${file} cannot be read (${code ?? String(err)})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new WorkspaceFileError(`${file} is not a regular file (a device, FIFO or socket): ignored`);
    if (st.size > maxBytes)
      throw new WorkspaceFileError(`${file} is ${st.size} bytes, over the ${maxBytes}-byte limit: ignored`);
    // The size can change while reading: count what is really read and stop past the cap.
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(1024 * 1024, maxBytes + 1 - length));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
      if (length > maxBytes) throw new WorkspaceFileError(`${file} grew over the ${maxBytes}-byte limit: ignored`);
    }
    return Buffer.concat(chunks, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

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
