// Where two versions of a document differ: the one region between their common start and common end. Both the
// model index and the rules' text scans reuse what lies outside it between keystrokes.

export interface ChangedWindow {
  /** First offset where the texts differ (equal in both). */
  start: number;
  /** End of the changed region in the old text (`old.slice(start, oldEnd)` became `text.slice(start, newEnd)`). */
  oldEnd: number;
  /** End of the changed region in the new text. */
  newEnd: number;
}

// Compared a chunk at a time (native string compares), then character by character in the first differing chunk.
const CHUNK = 2048;

export function changedWindow(old: string, text: string): ChangedWindow {
  const n = Math.min(old.length, text.length);
  let start = 0;
  while (start + CHUNK <= n && old.slice(start, start + CHUNK) === text.slice(start, start + CHUNK)) start += CHUNK;
  while (start < n && old.charCodeAt(start) === text.charCodeAt(start)) start++;
  // The common end may not overlap the common start.
  const maxTail = n - start;
  let tail = 0;
  while (
    tail + CHUNK <= maxTail &&
    old.slice(old.length - tail - CHUNK, old.length - tail) ===
      text.slice(text.length - tail - CHUNK, text.length - tail)
  )
    tail += CHUNK;
  while (tail < maxTail && old.charCodeAt(old.length - tail - 1) === text.charCodeAt(text.length - tail - 1)) tail++;
  return { start, oldEnd: old.length - tail, newEnd: text.length - tail };
}
