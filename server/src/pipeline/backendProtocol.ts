// Runtime checks for the backend protocol: the subset of JSON Schema that backend/qdq_backend/protocol.schema.json
// uses (type, enum, properties, required, additionalProperties, items, anyOf, $ref), interpreted against the schema
// embedded in backendProtocol.generated.ts. The Python side has the same checks (backend/qdq_backend/protocol.py).

export interface SchemaNode {
  type?: string | string[];
  enum?: readonly unknown[];
  properties?: Record<string, SchemaNode>;
  required?: readonly string[];
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  anyOf?: readonly SchemaNode[];
  $ref?: string;
  description?: string;
  'x-values'?: string;
}

export interface ProtocolSchema {
  definitions: Record<string, SchemaNode>;
  'x-methods': Record<string, { params: string; result: string }>;
  'x-notifications': Record<string, string>;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

function refName(ref: string): string {
  return ref.replace(/^#\/definitions\//, '');
}

/** The first problem in `value` against definition `name`, as `path: what is wrong`; null when it conforms. */
export function findViolation(
  schema: ProtocolSchema,
  name: string,
  value: unknown,
  path: string,
  checkEnums = true,
): string | null {
  const node = schema.definitions[name];
  if (!node) return `${path}: no schema definition ${name}`;
  return check(schema, node, value, path, checkEnums);
}

function check(schema: ProtocolSchema, node: SchemaNode, value: unknown, path: string, enums: boolean): string | null {
  if (node.$ref) return findViolation(schema, refName(node.$ref), value, path, enums);
  if (node.anyOf) {
    const problems = node.anyOf.map((n) => check(schema, n, value, path, enums));
    if (problems.some((p) => p === null)) return null;
    return problems[0];
  }
  if (node.enum) {
    if (enums && !node.enum.includes(value as never))
      return `${path}: expected one of ${node.enum.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(value)}`;
    if (!enums && typeof value !== 'string') return `${path}: expected a string, got ${typeOf(value)}`;
    return null;
  }
  if (node.type !== undefined) {
    const types = Array.isArray(node.type) ? node.type : [node.type];
    if (!types.some((t) => matchesType(value, t)))
      return `${path}: expected ${types.join(' or ')}, got ${typeOf(value)}`;
  }
  if (Array.isArray(value) && node.items) {
    for (let i = 0; i < value.length; i++) {
      const p = check(schema, node.items, value[i], `${path}[${i}]`, enums);
      if (p) return p;
    }
  }
  if (typeOf(value) === 'object' && (node.properties || node.required))
    return checkObject(schema, node, value as Record<string, unknown>, path, enums);
  return null;
}

function checkObject(
  schema: ProtocolSchema,
  node: SchemaNode,
  value: Record<string, unknown>,
  path: string,
  enums: boolean,
): string | null {
  for (const key of node.required ?? []) if (!(key in value)) return `${path}.${key}: missing`;
  const props = node.properties ?? {};
  for (const [key, v] of Object.entries(value)) {
    const sub = props[key];
    if (sub) {
      const p = check(schema, sub, v, `${path}.${key}`, enums);
      if (p) return p;
    } else if (node.additionalProperties === false) {
      return `${path}.${key}: not a field of this message`;
    }
  }
  return null;
}
