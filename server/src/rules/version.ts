// TensorRT version handling for rules whose severity or message depends on the target version.

// TensorRT 11.5 (2026-11-18) is the newest release qdq has a source for; `--trt-version 10.x` selects the 10.15 facts.
// The default lives with the other knobs (common/knobs.ts), so the CLI help and the editor setting say the same.
import { DEFAULT_TRT_VERSION } from '../common/knobs';
export { DEFAULT_TRT_VERSION };

export interface TrtVersion {
  major: number;
  minor: number;
  text: string;
}

/** Parses "10.15", "8.6.1", "v9" ... ; anything unreadable falls back to the default so a typo never disables rules. */
export function parseTrtVersion(text: string | undefined): TrtVersion {
  const match = /^\s*v?(\d{1,3})(?:\.(\d{1,3}))?/.exec(text ?? '');
  if (!match) return parseTrtVersion(DEFAULT_TRT_VERSION);
  const major = Number(match[1]);
  const minor = match[2] === undefined ? 0 : Number(match[2]);
  return { major, minor, text: `${major}.${minor}` };
}

export function versionAtLeast(v: TrtVersion, major: number, minor = 0): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}
