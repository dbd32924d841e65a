// Parent and descendant lookups that stay linear on deep trees (issue 14 D2).
//
// tree-sitter keeps no parent pointers: ts_node_parent walks down from the root to the node, and
// descendantForIndex walks down from the node it is asked on. Both cost the depth of the node. Ordinary code is
// a few dozen levels deep, but an 8,000-term `a + b + ...` chain or 20,000 nested calls are as deep as they are
// long, and an analysis that asks once per operator or call then costs the square of the file's length.
//
// A NodeFinder walks one TreeCursor to each node it is asked about, from where the last question left it. The
// cursor keeps its path, so the parent of the node it stands on is one step away, and questions asked in document
// order (as the analysis asks them: matches, hits and operands come sorted) move it over each node of the tree
// a bounded number of times. Answers are those of the native calls, node for node (the same ids;
// test/analysis/deepTrees.test.ts compares both over real sources).
import type Parser = require('tree-sitter');

type SyntaxNode = Parser.SyntaxNode;
type Tree = Parser.Tree;
type Cursor = Parser.TreeCursor;

/**
 * Counters for the tests that check the cost stays linear (never reset by the finder): cursor moves, questions,
 * and levels of the path compared with a range asked about.
 */
export const finderStats = { steps: 0, questions: 0, probes: 0 };

/** The node's start offset (transfer field, as parser.ts's fastStart). */
type StartOf = (n: SyntaxNode) => number;

export class NodeFinder {
  private readonly cursor: Cursor;
  /**
   * A second cursor on the main one's path, for the node objects of its ancestors: answering a parent by moving
   * the main cursor up would bring it out of the node it stands in, and the next question (the next item of a
   * long list, say) would come down into it again from the first child.
   */
  private readonly helper: Cursor;
  /** Level of the helper on the main cursor's path, or -1 when it is not on it. */
  private helperDepth = -1;
  /** The node objects along the cursor's path, root first; undefined where not needed yet. */
  private readonly path: (SyntaxNode | undefined)[];
  /** Start and end offsets of the nodes along the path (read once per node the cursor enters). */
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  /**
   * Every node object the finder handed out, kept while the tree lives. The binding caches one object per node
   * and hands it out again while it is alive, and rules compare nodes by identity (`childForFieldName('left') ===
   * attr`); an object dropped during a synchronous analysis leaves a cache entry that no longer holds it (its
   * finalizer runs later), and the next object for that node is then not cached, so identity would fail.
   */
  private readonly kept = new Map<number, SyntaxNode>();
  /**
   * Parents found, by node id: the rules ask for the same node's parent again (each rule climbs from its own
   * sites), and a node off the cursor's path costs a walk to it every time.
   */
  private readonly parents = new Map<number, SyntaxNode | null>();

  constructor(
    readonly tree: Tree,
    private readonly startOf: StartOf,
  ) {
    this.cursor = tree.walk();
    this.helper = tree.walk();
    const root = tree.rootNode;
    this.path = [root];
    this.kept.set(root.id, root);
    this.starts.push(startOf(root));
    this.ends.push(root.endIndex);
  }

  private depth(): number {
    return this.path.length - 1;
  }

  /** The main cursor's path changes at `level`: the helper stays valid only above it. */
  private changedAt(level: number): void {
    if (this.helperDepth >= level) this.helperDepth = -1;
  }

  private up(): void {
    this.changedAt(this.depth());
    this.cursor.gotoParent();
    this.path.pop();
    this.starts.pop();
    this.ends.pop();
    finderStats.steps++;
  }

  /** Into the first child of the current node that ends after `s`; false (cursor unmoved) when none contains [s, e). */
  private downTo(s: number, e: number): boolean {
    const c = this.cursor;
    if (c.gotoFirstChildForIndex(s) === null) return false;
    finderStats.steps++;
    const cs = c.startIndex;
    const ce = c.endIndex;
    if (cs > s || ce < e || ce <= s) {
      c.gotoParent();
      return false;
    }
    this.path.push(undefined);
    this.starts.push(cs);
    this.ends.push(ce);
    return true;
  }

  /**
   * Up the path until the current node contains [s, e) (the root always does). A target a few siblings further on
   * is reached by stepping along them: coming down again from the parent scans its children from the first, which
   * for the items of a 10,000-element list would cost the list's length per question.
   */
  private climbTo(s: number, e: number): void {
    for (let d = this.depth(); d > 0 && !(this.starts[d] <= s && e <= this.ends[d]); d = this.depth()) {
      if (s >= this.ends[d] && this.starts[d - 1] <= s && e <= this.ends[d - 1] && this.stepForward(s)) continue;
      this.up();
    }
  }

  /** Along the following siblings, at most SIBLING_STEPS, to the first that ends after `s`; false if none does. */
  private stepForward(s: number): boolean {
    const c = this.cursor;
    const d = this.depth();
    for (let k = 0; k < SIBLING_STEPS && c.gotoNextSibling(); k++) {
      finderStats.steps++;
      this.changedAt(d);
      this.path[d] = undefined;
      this.starts[d] = c.startIndex;
      this.ends[d] = c.endIndex;
      if (this.ends[d] > s) return this.starts[d] <= s;
    }
    return false;
  }

  /** The node object at `level` of the path (through the helper cursor for the levels above the main one). */
  private nodeAt(level: number): SyntaxNode {
    const known = this.path[level];
    if (known) return known;
    const d = this.depth();
    if (level === d) return this.keep((this.path[d] = this.cursor.currentNode));
    if (this.helperDepth < level && this.upAndBack(level)) return this.path[level]!;
    if (this.helperDepth < level) {
      this.helper.resetTo(this.cursor); // copies the cursor's whole stack: the depth of the tree
      this.helperDepth = d;
    }
    while (this.helperDepth > level) {
      this.helper.gotoParent();
      this.helperDepth--;
      finderStats.steps++;
      if (!this.path[this.helperDepth]) this.path[this.helperDepth] = this.keep(this.helper.currentNode);
    }
    return this.path[level]!;
  }

  /**
   * The node objects of the path from the current level up to `level`: the main cursor goes up to it and comes
   * back down the same way (each node it came from is the first child that ends after that node's start). Costs
   * the distance, where copying the cursor into the helper costs the whole depth, which in a chain of 100,000
   * operators is 100,000 per question. False (cursor where it was) when the way back is not certain.
   */
  private upAndBack(level: number): boolean {
    const c = this.cursor;
    const d = this.depth();
    for (let j = d; j > level; j--) if (this.starts[j] >= this.ends[j]) return false;
    let j = d;
    for (; j > level; j--) {
      c.gotoParent();
      finderStats.steps++;
      if (!this.path[j - 1]) this.path[j - 1] = this.keep(c.currentNode);
    }
    return this.backDown(d, j);
  }

  /** From `level` back down to `d` along the path. */
  private backDown(d: number, level: number): boolean {
    const c = this.cursor;
    for (let j = level + 1; j <= d; j++) {
      finderStats.steps++;
      const moved = c.gotoFirstChildForIndex(this.starts[j]) !== null;
      if (!moved || c.startIndex !== this.starts[j] || c.endIndex !== this.ends[j]) {
        // Not expected for non-empty nodes: start over from the root, and let the native call answer this one.
        c.reset(this.tree.rootNode);
        this.path.length = 1;
        this.starts.length = 1;
        this.ends.length = 1;
        this.helperDepth = -1;
        throw new LostPath();
      }
    }
    return true;
  }

  private keep(n: SyntaxNode): SyntaxNode {
    const id = n.id;
    const known = this.kept.get(id);
    if (known) return known;
    this.kept.set(id, n);
    return n;
  }

  /**
   * The object this finder handed out for the node `n` stands for, else `n`: a node the binding hands out again
   * (childForFieldName) then compares equal by identity to the one the finder gave, even when the binding's cache
   * could not hold it (see `kept`).
   */
  canonical(n: SyntaxNode): SyntaxNode {
    return this.kept.size > 1 ? (this.kept.get(n.id) ?? n) : n;
  }

  /** `root.descendantForIndex(s, e)` for a non-empty range (the smallest node that contains it); undefined: ask natively. */
  descendantFor(s: number, e: number): SyntaxNode | undefined {
    try {
      return this.descend(s, e);
    } catch (err) {
      if (err instanceof LostPath) return undefined;
      throw err;
    }
  }

  /** `node.parent`, or undefined when the cursor cannot reach the node (the caller then asks natively). */
  parentOf(node: SyntaxNode): SyntaxNode | null | undefined {
    const id = node.id;
    const known = this.parents.get(id);
    if (known !== undefined) return known;
    try {
      const found = this.parent(node);
      if (found !== undefined) this.parents.set(id, found);
      return found;
    } catch (err) {
      if (err instanceof LostPath) return undefined;
      throw err;
    }
  }

  private descend(s: number, e: number): SyntaxNode {
    finderStats.questions++;
    this.climbTo(s, e);
    while (this.downTo(s, e));
    return this.nodeAt(this.depth());
  }

  /**
   * The deepest level of the path that contains [s, e). Each level contains the next, so the levels that contain
   * the range are the top ones: a binary search. Scanning up from the bottom cost the distance, and questions about
   * the calls of a deep nesting, outermost first while the cursor stands at the innermost, cost its square.
   */
  private deepestContaining(s: number, e: number): number {
    let lo = 0; // the root contains every range asked about
    let hi = this.depth();
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      finderStats.probes++;
      if (this.starts[mid] <= s && e <= this.ends[mid]) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private parent(node: SyntaxNode): SyntaxNode | null | undefined {
    finderStats.questions++;
    const s = this.startOf(node);
    const e = node.endIndex;
    if (e <= s) return undefined; // empty (MISSING) nodes: the cursor cannot tell them from their neighbours
    // On the path already (walking up from a node asked about before): answered without moving.
    const k = this.deepestContaining(s, e);
    // Told apart by id: the binding may hand out a second object for a node it handed out before.
    const id = node.id;
    for (let j = k; j >= 0 && this.starts[j] === s && this.ends[j] === e; j--)
      if (this.nodeAt(j).id === id) return j === 0 ? null : this.nodeAt(j - 1);
    // Elsewhere: down to it (ancestors with the same range, an expression statement and its call, sit above it).
    this.climbTo(s, e);
    while (this.depth() > 0 && this.starts[this.depth() - 1] === s && this.ends[this.depth() - 1] === e) this.up();
    for (;;) {
      const d = this.depth();
      if (this.starts[d] === s && this.ends[d] === e && this.nodeAt(d).id === id) break;
      if (!this.downTo(s, e)) return undefined;
    }
    finderStats.steps++;
    const d = this.depth();
    return d === 0 ? null : this.nodeAt(d - 1);
  }
}

const SIBLING_STEPS = 8;

/** The cursor lost its way back (see backDown): the question goes to the native call. */
class LostPath extends Error {}

const FINDERS = new WeakMap<Tree, NodeFinder>();

export function finderFor(tree: Tree, startOf: StartOf): NodeFinder {
  let f = FINDERS.get(tree);
  if (!f) FINDERS.set(tree, (f = new NodeFinder(tree, startOf)));
  return f;
}

/** The tree's finder, if one was made (never makes one). */
export function existingFinder(tree: Tree): NodeFinder | undefined {
  return FINDERS.get(tree);
}

/** An edit moves the tree's nodes under the cursor: the next question starts a new one. */
export function forgetFinder(tree: Tree): void {
  FINDERS.delete(tree);
}
