// Hover on a call of one of the class's own members in forward, `self.head(x)` or `self.matmul0_a_quantizer(q)`:
// what the member is (a layer, a quantizer, an instance of another class of this file), what it quantizes and,
// after calibration, its amax, instead of the bare "(call)" a plain function call gets.
import type { Layer, ModelIndex, ModuleClass, Op } from '../analysis';
import { CalibrationStore, formatAmax } from './calibration';

const MEMBER_CALL = /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)$/;

/** The member `self.<attr>` an op of kind 'call' calls, when it is one. */
export function calledMember(op: Op, owner: ModuleClass | undefined): string | undefined {
  if (!owner || op.kind !== 'call') return undefined;
  const m = MEMBER_CALL.exec(op.callee);
  return m && m[1] === (op.owner ?? 'self') ? m[2] : undefined;
}

/** `self.<attr> = Ctor(...)` in the class, as written (for members that are not layers qdq knows). */
function assignedCtor(owner: ModuleClass, attr: string, text: string): string | undefined {
  const body = text.slice(owner.span.start, owner.span.end);
  const m = new RegExp(`self\\.${attr}\\s*=\\s*(?:qdq_quant\\.\\w+\\()?([A-Za-z_][\\w.]*)\\s*\\(`).exec(body);
  return m ? m[1] : undefined;
}

function amaxLines(store: CalibrationStore, file: string, cls: string, names: RegExp, max = 6): string[] {
  const qs = store
    .forFile(file)
    .filter((s) => s.cls === cls)
    .flatMap((s) => s.quantizers)
    .filter((q) => names.test(q.name));
  const out = qs.slice(0, max).map((q) => `- \`${q.name}\`: ${formatAmax(q)}${q.method ? ` (${q.method})` : ''}`);
  if (qs.length > max) out.push(`- ... and ${qs.length - max} more`);
  return out;
}

function quantizerCall(attr: string, op: Op, owner: ModuleClass, file: string, store: CalibrationStore): string[] {
  const uses = owner.ops.filter((o) => o !== op && o.operandQuantizers.includes(attr));
  const lines = [
    `**TensorQuantizer** \`${owner.name}.${attr}\`, called here`,
    '',
    'Quantizes its argument to INT8 (per tensor, symmetric: scale = amax / 127) before the operation that reads it; exports as QuantizeLinear/DequantizeLinear.',
  ];
  for (const u of uses) {
    const i = u.operandQuantizers.indexOf(attr);
    const role = u.operandRoles?.[i] ?? (u.kind === 'matmul' || u.kind === 'bmm' ? (i === 0 ? 'a' : 'b') : `${i + 1}`);
    lines.push('', `Feeds operand \`${role}\` of \`${u.callee}\` (${u.kind}) on line ${u.range.start.line + 1}.`);
  }
  const own = store
    .forFile(file)
    .filter((s) => s.cls === owner.name && s.attr === attr)
    .flatMap((s) => s.quantizers);
  if (own.length) {
    lines.push('', '**Calibration**');
    for (const q of own.slice(0, 6)) lines.push(`- \`${q.name}\`: ${formatAmax(q)}${q.method ? ` (${q.method})` : ''}`);
  } else lines.push('', 'Not calibrated yet: run **QDQ: Calibrate**.');
  return lines;
}

function layerCall(layer: Layer, owner: ModuleClass, file: string, store: CalibrationStore): string[] {
  const state =
    layer.wrapped === 'quant'
      ? 'quantized: input per tensor, weight per channel (INT8)'
      : layer.wrapped === 'keep_float'
        ? 'kept in float (`qdq_quant.keep_float`)'
        : 'not quantized';
  const lines = [
    `**${layer.ctor}** \`${owner.name}.${layer.attr}\`, called here`,
    '',
    `Built on line ${layer.callRange.start.line + 1}; ${state}.`,
  ];
  const amax = amaxLines(store, file, owner.name, new RegExp(`(^|\\.)${layer.attr}\\.\\w+_quantizer$`));
  if (amax.length) lines.push('', '**Calibration**', ...amax);
  return lines;
}

function submoduleCall(
  attr: string,
  ctor: string,
  owner: ModuleClass,
  index: ModelIndex,
  file: string,
  store: CalibrationStore,
): string[] {
  const cls = index.classes.find((c) => c.name === ctor.split('.').pop());
  const lines = [`**${ctor}** \`${owner.name}.${attr}\`, called here`, ''];
  if (!cls) {
    lines.push('A module built outside this file: qdq sees its quantizers only through calibration.');
  } else {
    const quantized = cls.layers.filter((l) => l.wrapped === 'quant');
    const weighted = cls.layers.filter((l) => ['linear', 'conv', 'convtranspose'].includes(l.kind));
    lines.push(
      `An instance of \`${cls.name}\` (line ${cls.range.start.line + 1}): ${quantized.length} of ${weighted.length} weighted layers quantized` +
        `${cls.quantizers.length ? `, ${cls.quantizers.length} functional-op quantizer${cls.quantizers.length === 1 ? '' : 's'} (${cls.quantizers.map((q) => `\`${q.name}\``).join(', ')})` : ''}.`,
    );
  }
  // The instance's quantizers are named through this attribute: `head.fc.input_quantizer`, `blocks.0.add0_...`.
  const amax = amaxLines(store, file, cls?.name ?? '', new RegExp(`(^|\\.)${attr}\\.`));
  if (amax.length) lines.push('', '**Calibration** (this instance)', ...amax);
  return lines;
}

/** Markdown for a call of a class member, or undefined when the call is not one (the generic op hover then). */
export function callSiteMarkdown(
  op: Op,
  owner: ModuleClass | undefined,
  index: ModelIndex,
  file: string,
  store: CalibrationStore,
  text: string,
): string | undefined {
  const attr = calledMember(op, owner);
  if (!attr || !owner) return undefined;
  if (owner.quantizers.some((q) => q.name === attr)) return quantizerCall(attr, op, owner, file, store).join('\n');
  const layer = owner.layers.find((l) => l.attr === attr);
  if (layer) return layerCall(layer, owner, file, store).join('\n');
  const ctor = assignedCtor(owner, attr, text);
  if (ctor) return submoduleCall(attr, ctor, owner, index, file, store).join('\n');
  return undefined;
}
