// The policy tables as the compiler wrote them (an imported JSON module) in, a typed Policy out: the tables are
// held to their schema (POLICY_SCHEMA, generated from the same models as policy.json) once, at start-up, so a
// mismatched compiler and runtime, or a hand-edited policy.json, fail loudly at start naming the field, instead
// of deciding on missing data in the middle of a turn. Workers forbid eval, so the schema is interpreted, not
// compiled: only the subset the generator emits (policy_types.ts lists it as JsonSchemaNode).

import { PolicyError } from "./errors";
import type { Policy } from "./policy";
import { POLICY_SCHEMA, type JsonSchemaNode } from "./policy_types";

export const POLICY_FORMAT = 1;

export function loadPolicy(tables: unknown): Policy {
  const value = tables as { format?: unknown } | null;
  if (value === null || typeof value !== "object") throw new PolicyError("policy.json: expected an object");
  if (value.format !== POLICY_FORMAT) {
    throw new PolicyError(`policy.json: tables have format ${String(value.format)}; this runtime reads ${POLICY_FORMAT}`);
  }
  const problem = schemaProblem(POLICY_SCHEMA, tables, POLICY_SCHEMA, []);
  if (problem !== null) throw new PolicyError(`policy.json: ${problem}`);
  return tables as Policy;
}

/** The first place `value` does not fit `node`, as "path: expected X, got Y", or null when it fits. */
export function schemaProblem(node: JsonSchemaNode, value: unknown, root: JsonSchemaNode, path: string[]):
  string | null {
  if (node.$ref !== undefined) return schemaProblem(resolve(root, node.$ref), value, root, path);
  const at = path.length === 0 ? "(root)" : path.join(".");
  if (node.anyOf !== undefined) {
    const problems = node.anyOf.map((option) => schemaProblem(option, value, root, path));
    if (problems.includes(null)) return null;
    // A value of the right kind for one option (an object for `Checkpoint | null`) is judged by that option.
    const near = node.anyOf.findIndex((option) => fitsType(option, value, root));
    return near >= 0 ? problems[near]! : `${at}: expected ${describe(node, root)}, got ${shown(value)}`;
  }
  if (node.const !== undefined && value !== node.const) {
    return `${at}: expected ${JSON.stringify(node.const)}, got ${shown(value)}`;
  }
  if (node.enum !== undefined && !node.enum.includes(value as string)) {
    return `${at}: expected ${describe(node, root)}, got ${shown(value)}`;
  }
  if (node.type !== undefined && !fitsType(node, value, root)) {
    return `${at}: expected ${describe(node, root)}, got ${shown(value)}`;
  }
  if (Array.isArray(value)) return arrayProblem(node, value, root, path, at);
  if (node.type === "object") return objectProblem(node, value as Record<string, unknown>, root, path);
  return null;
}

function arrayProblem(node: JsonSchemaNode, value: unknown[], root: JsonSchemaNode, path: string[], at: string):
  string | null {
  if (node.minItems !== undefined && value.length < node.minItems) {
    return `${at}: expected at least ${node.minItems} items, got ${value.length}`;
  }
  if (node.maxItems !== undefined && value.length > node.maxItems) {
    return `${at}: expected at most ${node.maxItems} items, got ${value.length}`;
  }
  for (const [i, item] of value.entries()) {
    const itemNode = node.prefixItems?.[i] ?? node.items;
    const problem = itemNode === undefined ? null : schemaProblem(itemNode, item, root, [...path, String(i)]);
    if (problem !== null) return problem;
  }
  return null;
}

function objectProblem(node: JsonSchemaNode, value: Record<string, unknown>, root: JsonSchemaNode, path: string[]):
  string | null {
  const at = path.length === 0 ? "(root)" : path.join(".");
  for (const key of node.required ?? []) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) return `${[...path, key].join(".")}: missing`;
  }
  for (const [key, item] of Object.entries(value)) {
    const here = [...path, key];
    const named = node.properties !== undefined && Object.prototype.hasOwnProperty.call(node.properties, key)
      ? node.properties[key]
      : undefined;
    if (named !== undefined) {
      const problem = schemaProblem(named, item, root, here);
      if (problem !== null) return problem;
      continue;
    }
    if (node.additionalProperties === false) return `${here.join(".")}: unknown key in ${at}`;
    if (node.propertyNames !== undefined) {
      const problem = schemaProblem(node.propertyNames, key, root, here);
      if (problem !== null) return problem.replace(/: expected /, ": expected a key ");
    }
    if (typeof node.additionalProperties === "object") {
      const problem = schemaProblem(node.additionalProperties, item, root, here);
      if (problem !== null) return problem;
    }
  }
  return null;
}

function resolve(root: JsonSchemaNode, ref: string): JsonSchemaNode {
  const name = ref.replace(/^#\/\$defs\//, "");
  const found = root.$defs?.[name];
  if (found === undefined) throw new PolicyError(`policy schema: no definition \`${ref}\``);
  return found;
}

function fitsType(node: JsonSchemaNode, value: unknown, root: JsonSchemaNode): boolean {
  const target = node.$ref !== undefined ? resolve(root, node.$ref) : node;
  switch (target.type) {
    case "object": return typeof value === "object" && value !== null && !Array.isArray(value);
    case "array": return Array.isArray(value);
    case "string": return typeof value === "string";
    case "integer": return typeof value === "number" && Number.isInteger(value);
    case "number": return typeof value === "number" && Number.isFinite(value);
    case "boolean": return typeof value === "boolean";
    case "null": return value === null;
    default: return false; // an untyped option (an enum, a const) is never the "near" one
  }
}

/** What a node accepts, in words: `"enforce" | "shadow"`, `integer`, `Checkpoint | null`. */
function describe(node: JsonSchemaNode, root: JsonSchemaNode): string {
  if (node.$ref !== undefined) {
    const target = resolve(root, node.$ref);
    return target.enum !== undefined || target.const !== undefined ? describe(target, root)
      : node.$ref.replace(/^#\/\$defs\//, "");
  }
  if (node.anyOf !== undefined) return node.anyOf.map((option) => describe(option, root)).join(" | ");
  if (node.enum !== undefined) return node.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (node.const !== undefined) return JSON.stringify(node.const);
  return node.type ?? "any value";
}

function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
