// Links from the report page back to the user's source: command URIs of the extension's qdq.openSource.
import { escapeHtml, isObject, num } from './reportFormat';

/** Where a finding came from in the user's source, as far as the pipeline could trace it. */
export interface SourceRef {
  file?: string;
  line?: number; // 1-based
  cls?: string;
  attr?: string;
}

/** A source reference from the shapes the pipeline uses: {site:{file,cls,attr,line}}, {file,line}, "file:line". */
export function sourceRefOf(entry: unknown): SourceRef | undefined {
  if (typeof entry === 'string') {
    const m = /^(.*\.py):(\d+)/.exec(entry);
    return m ? { file: m[1], line: Number(m[2]) } : undefined;
  }
  if (!isObject(entry)) return undefined;
  const inner = isObject(entry.site) ? entry.site : isObject(entry.source) ? entry.source : entry;
  const file = typeof inner.file === 'string' ? inner.file : typeof inner.path === 'string' ? inner.path : undefined;
  if (!file) return typeof entry.site === 'string' ? sourceRefOf(entry.site) : undefined;
  const line = num(inner.line) ?? num(entry.line);
  return {
    file,
    line,
    cls: typeof inner.cls === 'string' ? inner.cls : undefined,
    attr: typeof inner.attr === 'string' ? inner.attr : undefined,
  };
}

/** `command:` URI that opens `ref` at its line through the extension's qdq.openSource command. */
export function openSourceUri(ref: SourceRef, projectDir?: string): string {
  const args = [{ file: ref.file, line: ref.line, cls: ref.cls, attr: ref.attr, projectDir }];
  return `command:qdq.openSource?${encodeURIComponent(JSON.stringify(args))}`;
}

/** `file:line` linked to the source, or a muted note when the pipeline could not trace it. */
export function sourceLink(entry: unknown, projectDir?: string, label?: string): string {
  const ref = sourceRefOf(entry);
  if (!ref || !ref.file) return label ? escapeHtml(label) : '<span class="muted">source not traced</span>';
  const base = ref.file.split(/[\\/]/).pop() ?? ref.file;
  const where = ref.line
    ? `${base}:${ref.line}`
    : ref.cls
      ? `${base} (${ref.cls}${ref.attr ? '.' + ref.attr : ''})`
      : base;
  return `<a href="${escapeHtml(openSourceUri(ref, projectDir))}" title="${escapeHtml(`${ref.file}${ref.line ? `:${ref.line}` : ''}`)}">${escapeHtml(label ?? where)}</a>`;
}
