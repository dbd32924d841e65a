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
