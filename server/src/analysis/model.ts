// buildModelIndex: the index of a file's modules, layers and ops. Each top-level statement is a segment
// (segmentIndex.ts's indexSegment), reused between versions of a document while its text stays the same
// (incremental.ts); this module assembles the index from the segments and resolves what spans statements
// (module-ness of classes, layers from helper functions, delegates). Pure: tree + text (and the previous index)
// in, data out; what the next build of the same document reuses travels on the index (ModelIndex.lineage).
import type { Tree } from './parser';
import { analysisText } from './parser';
import { emptyImports, isLayerCtor, layerKind } from './canonical';
import { DocumentReader } from './documentReader';
import type { ClassAnchors, InsertAnchor, Segment } from './segmentIndex';
import {
  allSlots,
  delegateClassesIn,
  editedSlots,
  shiftAnchor,
  shiftedClass,
  shiftedFunction,
  shiftLayer,
  shiftOp,
  type Lineage,
  type Slots,
  type StatementLayout,
} from './incremental';
import type { FunctionInfo, IndexCaches, Layer, ModelIndex, ModuleClass, Op } from './types';

/**
 * Build the model index. With `previous` (the index of an earlier version of the same document), top-level
 * statements whose text is unchanged are reused (shifted when they moved) and only edited ones are re-indexed,
 * which keeps one-keystroke re-analysis of large files cheap. The result is the same as a fresh build.
 */
export function buildModelIndex(tree: Tree, text: string, previous?: ModelIndex): ModelIndex {
  const eol = detectEol(text);
  return buildOrEmpty(tree, analysisText(text), eol, previous);
}

function buildOrEmpty(tree: Tree, text: string, eol: '\n' | '\r\n' | '\r', previous?: ModelIndex): ModelIndex {
  try {
    return build(tree, text, eol, previous);
  } catch {
    // Analysis must never take the server down: a best-effort empty index instead.
    return {
      classes: [],
      functions: [],
      imports: emptyImports(),
      topLevelOps: [],
      topLevelLayers: [],
      hasSyntaxErrors: true,
      eol,
    };
  }
}

/** The file's line break, by its first one: LF, CRLF or a lone CR (all three end a line for Python and LSP). */
export function detectEol(text: string): '\n' | '\r\n' | '\r' {
  const cr = text.indexOf('\r');
  if (cr < 0) return '\n';
  const lf = text.indexOf('\n');
  if (lf >= 0 && lf < cr) return '\n';
  return text.charCodeAt(cr + 1) === 10 ? '\r\n' : '\r';
}

function build(tree: Tree, text: string, eol: '\n' | '\r\n' | '\r', previous?: ModelIndex): ModelIndex {
  const doc = new DocumentReader(text, tree);
  const prevLineage = previous?.lineage;
  const prevCache = prevLineage?.segments;
  const slots = (prevCache && prevLineage && editedSlots(doc, prevLineage, prevCache)) || allSlots(doc, prevCache);
  return assemble(tree, text, eol, slots, prevLineage);
}

/**
 * Module-ness: nn.* bases, local module classes (to a fixed point), or imported bases with a forward method; a
 * module class without an __init__ gets the anchor a generated one would use.
 */
function markModuleClasses(
  classes: ModuleClass[],
  classBases: Map<ModuleClass, string[]>,
  initAnchors: Map<ModuleClass, InsertAnchor | undefined>,
): void {
  // Module-ness: nn.* bases, local module classes (to a fixed point), or imported bases with a forward method.
  const byName = new Map<string, ModuleClass>();
  for (const cls of classes) byName.set(cls.name, cls);
  for (const cls of classes)
    if (classBases.get(cls)!.some((b) => isLayerCtor(b) || b === 'nn.Module')) cls.isModule = true;
  const propagate = (): void => {
    for (let changed = true; changed;) {
      changed = false;
      for (const cls of classes) {
        if (!cls.isModule && cls.bases.some((b) => byName.get(b)?.isModule)) {
          cls.isModule = true;
          changed = true;
        }
      }
    }
  };
  propagate();
  // Bases imported from elsewhere (HF's PreTrainedModel, GradientCheckpointingLayer): a module when the class
  // has a forward or the base's name says so.
  for (const cls of classes) {
    if (cls.isModule) continue;
    const foreign = cls.bases.filter((b) => !byName.has(b) && b !== 'object');
    if (foreign.length && (cls.forwardRange || foreign.some((b) => /(Model|Module|Layer|Block)$/.test(b))))
      cls.isModule = true;
  }
  propagate();
  for (const cls of classes) {
    const anchors = cls as ModuleClass & ClassAnchors;
    if (cls.isModule && !cls.initSpan) anchors.initAnchor = initAnchors.get(cls);
    else delete anchors.initAnchor;
  }
}

/** The index from the per-statement segments: fresh top-level objects, then what spans statements. */
function assemble(
  tree: Tree,
  text: string,
  eol: '\n' | '\r\n' | '\r',
  slots: Slots,
  prevLineage: Lineage | undefined,
): ModelIndex {
  const { imports } = slots.cache;
  const segments: Segment[] = [];
  for (const seg of slots.cache.slots) if (seg) segments.push(seg);
  // Assemble fresh top-level objects (segments stay untouched so they can be reused next time).
  const classes: ModuleClass[] = [];
  const classBases = new Map<ModuleClass, string[]>();
  const initAnchors = new Map<ModuleClass, InsertAnchor | undefined>();
  const functions: FunctionInfo[] = [];
  const moduleParams = new Map<FunctionInfo, string>();
  const topLevelOps: Op[] = [];
  const topLevelLayers: Layer[] = [];
  const segClasses: ModuleClass[][] = [];
  const segFunctions: FunctionInfo[][] = [];
  for (const seg of segments) {
    const { dOff, dRow } = seg;
    const moved = dOff !== 0 || dRow !== 0;
    const cs: ModuleClass[] = [];
    for (const rec of seg.classes) {
      const cls = moved
        ? shiftedClass(rec.cls, dOff, dRow)
        : { ...rec.cls, isModule: false, layers: rec.cls.layers.slice(), delegates: [] };
      classes.push(cls);
      cs.push(cls);
      classBases.set(cls, rec.bases);
      initAnchors.set(cls, moved ? shiftAnchor(rec.bodyAnchor, dOff) : rec.bodyAnchor);
    }
    segClasses.push(cs);
    const fs: FunctionInfo[] = [];
    for (const rec of seg.functions) {
      const fn = moved ? shiftedFunction(rec.fn, dOff, dRow) : { ...rec.fn, layers: rec.fn.layers.slice() };
      functions.push(fn);
      fs.push(fn);
      if (rec.moduleParam) moduleParams.set(fn, rec.moduleParam);
    }
    segFunctions.push(fs);
    for (const op of seg.topLevelOps) topLevelOps.push(moved ? shiftOp(op, dOff, dRow) : op);
    for (const l of seg.topLevelLayers) topLevelLayers.push(moved ? shiftLayer(l, dOff, dRow) : l);
  }

  markModuleClasses(classes, classBases, initAnchors);

  // Layers built by module-level helper functions (torchvision's conv3x3/conv1x1).
  const fnByName = new Map<string, FunctionInfo>();
  for (const f of functions) if (!fnByName.has(f.name)) fnByName.set(f.name, f);
  segments.forEach((seg, si) => {
    for (const hc of seg.helperCalls) {
      const helper = fnByName.get(hc.name);
      if (!helper || !helper.returnsLayer || !helper.returnedCtor) continue;
      const at = seg.dOff !== 0 || seg.dRow !== 0 ? shiftLayer(hc.layer, seg.dOff, seg.dRow) : hc.layer;
      const layer: Layer = { ...at, ctor: helper.returnedCtor, kind: layerKind(helper.returnedCtor) };
      if (hc.cls !== undefined) segClasses[si][hc.cls].layers.push(layer);
      else if (hc.fn !== undefined) {
        const target = segFunctions[si][hc.fn];
        if (target !== helper) target.layers.push(layer);
      } else topLevelLayers.push(layer);
    }
  });

  // Classes that hand themselves to a module-receiving function (by call or by passing its name).
  // Every mention of the function's name counts, and a mention lies in a class of its own top-level statement
  // only, so each segment answers for its text (and remembers the answer while its text stays the same).
  for (const [f, param] of moduleParams) {
    segments.forEach((seg, si) => {
      for (const k of delegateClassesIn(seg, f.name))
        segClasses[si][k].delegates.push({ func: f.name, paramName: param });
    });
  }

  const index: ModelIndex = {
    classes,
    functions,
    imports,
    topLevelOps,
    topLevelLayers,
    hasSyntaxErrors: tree.rootNode.hasError,
    eol,
  };
  const lineage: Lineage = {
    text,
    starts: slots.starts,
    rows: slots.rows,
    types: slots.types,
    reuse: slots.reuse,
    tree,
    segments: slots.cache,
    caches: prevLineage?.caches ?? {},
  };
  // Not enumerable: how the index was made is no part of what it says about the file (comparisons of a fresh and
  // an incremental index, JSON and spreads see the same data).
  Object.defineProperty(index, 'lineage', { value: lineage, enumerable: false });
  return index;
}

/**
 * The top-level statements of `text` (starts, node types, and what an incremental build kept from the previous
 * version), when `index` was built from it. The rules cache their diagnostics per statement with it.
 */
export function statementLayout(index: ModelIndex | null | undefined, text: string): StatementLayout | undefined {
  const lineage = index?.lineage;
  return lineage && lineage.text === analysisText(text)
    ? { starts: lineage.starts, rows: lineage.rows, types: lineage.types, reuse: lineage.reuse }
    : undefined;
}

/**
 * The caches that follow one document from index to index (each build with `previous` hands them on), typed in
 * analysis/types.ts (IndexCaches). Contents never decide a result, only how fast it comes.
 */
export function documentCaches(index: ModelIndex | null | undefined): IndexCaches | undefined {
  return index?.lineage?.caches;
}
