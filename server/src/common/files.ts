// Writing the user's files: in place semantics (mode, owner, group and symlinks kept; read-only refused) with
// an atomic replace underneath (temp file in the target's folder + rename), so a source is never half-written.
// Temp files carry the writer's pid; one left by a killed run is removed by the next write to that folder.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** A write qdq refuses or cannot do: the message names the file, the reason and the fix (no stack trace). */
export class FileWriteError extends Error {}

const TEMP_SUFFIX = '.tmp';
/** `.NAME.qdq-PID-RANDOM.tmp` (this module), `.NAME.qdq-PID.tmp` (older CLI), `.NAME.PID.MS.tmp` (onnx/atomic). */
const TEMP_RE = /^\.(.+)\.(?:qdq-(\d+)(?:-[0-9a-f]+)?|(\d+)\.\d+)\.tmp$/;

/** Temp files of this process not yet renamed: removed if the process exits before it gets there. */
const inFlight = new Set<string>();
let exitHookInstalled = false;
function track(tmp: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const t of inFlight) removeQuietly(t);
    });
  }
  inFlight.add(tmp);
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone */
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files in `dir` left by qdq processes that are no longer running; returns their names. */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m || !name.endsWith(TEMP_SUFFIX)) continue;
    const pid = Number(m[2] ?? m[3]);
    if (pidAlive(pid)) continue;
    removeQuietly(path.join(dir, name));
    removed.push(name);
  }
  return removed;
}

/** Mode a new file gets from this process (0666 less the umask), so every file qdq writes has the same one. */
export function newFileMode(): number {
  const mask = process.umask();
  return 0o666 & ~mask;
}

function tempPath(target: string): string {
  const rand = crypto.randomBytes(4).toString('hex');
  return path.join(path.dirname(target), `.${path.basename(target)}.qdq-${process.pid}-${rand}${TEMP_SUFFIX}`);
}

/** Writes `data` to a temp file beside `target` (mode, owner applied by `prepare`) and renames it over `target`. */
function replaceAtomically(target: string, data: string | Uint8Array, prepare: (fd: number) => void): void {
  const tmp = tempPath(target);
  track(tmp);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, data);
      prepare(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (e) {
    removeQuietly(tmp);
    throw e;
  } finally {
    inFlight.delete(tmp);
  }
}

/** True when the current user may change `st`'s file (root: only when some write bit is set, as editors do). */
function writable(file: string, st: fs.Stats): boolean {
  if ((st.mode & 0o222) === 0) return false;
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Changes an existing file's contents, as an editor's save does: a read-only file is refused; a symlink is
 * followed and its target changed; mode, owner and group stay. The new bytes land atomically (temp + rename);
 * where the owner or group cannot be given to the temp file (another user's file in a shared folder), the
 * file is rewritten through its own inode instead, after a backup copy that is removed once the write is done.
 */
export function writeInPlace(file: string, data: string | Uint8Array, shown = file): void {
  let target: string;
  let st: fs.Stats;
  try {
    target = fs.realpathSync(file);
    st = fs.statSync(target);
  } catch {
    throw new FileWriteError(`${shown}: no such file (nothing was written)`);
  }
  if (!st.isFile()) throw new FileWriteError(`${shown} is not a regular file (nothing was written)`);
  if (!writable(target, st))
    throw new FileWriteError(
      `${shown} is read-only, so qdq did not change it; make it writable (chmod u+w ${shown}) or drop --write to print the result`,
    );
  const dir = path.dirname(target);
  removeStaleTempFiles(dir);
  try {
    replaceAtomically(target, data, (fd) => {
      fs.fchmodSync(fd, st.mode & 0o7777);
      try {
        fs.fchownSync(fd, st.uid, st.gid);
      } catch {
        throw new OwnershipNotKept();
      }
    });
    return;
  } catch (e) {
    if (!(e instanceof OwnershipNotKept) && (e as NodeJS.ErrnoException).code !== 'EACCES') throw explain(e, shown);
  }
  rewriteThroughInode(target, data, shown);
}

class OwnershipNotKept extends Error {}

/** The fallback for files whose folder or ownership we cannot recreate: same inode, with a backup meanwhile. */
function rewriteThroughInode(target: string, data: string | Uint8Array, shown: string): void {
  const backup = tempPath(target);
  let backupMade = false;
  try {
    fs.copyFileSync(target, backup, fs.constants.COPYFILE_EXCL);
    backupMade = true;
    track(backup);
  } catch {
    /* no room for a backup beside it (unwritable folder): the write below is still a single call */
  }
  try {
    fs.writeFileSync(target, data);
  } catch (e) {
    if (backupMade) inFlight.delete(backup); // keep it: it is the only full copy left
    throw explain(
      e,
      shown,
      backupMade ? ` (the previous contents are in ${path.join(path.dirname(shown), path.basename(backup))})` : '',
    );
  }
  if (backupMade) {
    removeQuietly(backup);
    inFlight.delete(backup);
  }
}

function explain(e: unknown, shown: string, extra = ''): Error {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code !== 'string') return e as Error;
  const why =
    err.code === 'ENOSPC'
      ? 'the disk is full'
      : err.code === 'EACCES' || err.code === 'EPERM'
        ? 'permission denied'
        : err.code === 'EROFS'
          ? 'the file system is read-only'
          : err.message;
  return new FileWriteError(`cannot write ${shown}: ${why}${extra}`);
}

/** Creates or replaces a file qdq owns (outputs, the helper module) atomically, with the usual new-file mode. */
export function writeNewFile(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  removeStaleTempFiles(dir);
  const mode = newFileMode();
  try {
    replaceAtomically(file, data, (fd) => fs.fchmodSync(fd, mode));
  } catch (e) {
    throw explain(e, file);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading files of the user's workspace. A project is opened before it is trusted, so anything it contains may be
// hostile: `qdq-out/calibration.json`, pyproject.toml, a model or library source may be a symlink to /dev/stdin
// (blocks forever), to /dev/zero (endless) or a FIFO. Every read opens without blocking (O_NONBLOCK: a FIFO with
// no writer does not hang), accepts regular files only (fstat on the opened handle, so a symlink swapped in
// between cannot slip through) and stops at a size cap (issue 14 D1 and the audit after it).

/** A file qdq will not read: the message names the file and the problem. */
export class RegularFileError extends Error {}

/** Size caps by kind of file: far above what such files hold, far below memory. */
export const MAX_SOURCE_BYTES = 32 * 1024 * 1024;
/** report.json, calibration.json and the other results qdq writes (histograms included). */
export const MAX_RESULTS_BYTES = 64 * 1024 * 1024;
/** ONNX models and eval.bin: protobuf's own 2 GiB limit on a single-file model. */
export const MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024;

/** The opened file and its size when opened, or undefined when there is no such file. */
async function openRegular(
  file: string,
  maxBytes: number,
): Promise<{ handle: fs.promises.FileHandle; size: number } | undefined> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new RegularFileError(`${file} cannot be read (${code ?? String(err)})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile())
      throw new RegularFileError(`${file} is not a regular file (a folder, device, FIFO or socket): ignored`);
    if (st.size > maxBytes)
      throw new RegularFileError(`${file} is ${st.size} bytes, over the ${maxBytes}-byte limit: ignored`);
    return { handle, size: st.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * The text of a regular file of at most `maxBytes`, or undefined when there is no such file, without blocking the
 * event loop. Throws a RegularFileError for anything that is not a regular file or is too large.
 */
export async function readRegularFile(file: string, maxBytes: number): Promise<string | undefined> {
  return (await readRegularBytes(file, maxBytes))?.toString('utf8');
}

/** readRegularFile's bytes, for binary files (ONNX models, eval.bin). */
export async function readRegularBytes(file: string, maxBytes: number): Promise<Buffer | undefined> {
  const opened = await openRegular(file, maxBytes);
  if (!opened) return undefined;
  const { handle, size } = opened;
  try {
    // One buffer of the size found when opening, and one byte more to see growth: the size can change while
    // reading, so what is really read is counted and the read stops past the cap. Reads of at most 16 MiB let
    // other work run in between.
    const buf = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
    let length = 0;
    while (length < buf.length) {
      const want = Math.min(16 * 1024 * 1024, buf.length - length);
      const { bytesRead } = await handle.read(buf, length, want, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw new RegularFileError(`${file} grew over the ${maxBytes}-byte limit: ignored`);
    if (length > size) throw new RegularFileError(`${file} changed while being read: try again`);
    return buf.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/**
 * readRegularFile for the synchronous paths of the pipeline (its config and model source, read once per run): the
 * same checks, so a FIFO or /dev/zero is refused at once instead of hanging the process; a regular file of
 * bounded size on a local disk is read in one go.
 */
export function readRegularFileSync(file: string, maxBytes: number): string | undefined {
  return readRegularBytesSync(file, maxBytes)?.toString('utf8');
}

/** readRegularFileSync's bytes, for binary files (ONNX models, eval.bin) and sources checked before decoding. */
export function readRegularBytesSync(file: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new RegularFileError(`${file} cannot be read (${code ?? String(err)})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new RegularFileError(`${file} is not a regular file (a folder, device, FIFO or socket)`);
    if (st.size > maxBytes) throw new RegularFileError(`${file} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
    const buf = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (let n; length < buf.length && (n = fs.readSync(fd, buf, length, buf.length - length, null)) > 0;) length += n;
    if (length > maxBytes) throw new RegularFileError(`${file} grew over the ${maxBytes}-byte limit`);
    if (length > st.size) throw new RegularFileError(`${file} changed while being read: try again`);
    return buf.subarray(0, length);
  } finally {
    fs.closeSync(fd);
  }
}

/** A file that readRegularFileSync found missing, as the error the callers report. */
export function requireRegular<T>(file: string, read: T | undefined): T {
  if (read === undefined) throw new RegularFileError(`${file}: no such file`);
  return read;
}
