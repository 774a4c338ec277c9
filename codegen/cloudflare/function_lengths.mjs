// Lines per function in the runtime library, measured on the TypeScript compiler's own syntax tree (no brace
// counting): one JSON line per function with a body, `{"file", "name", "line", "lines"}`, first line (the
// declaration's, comments above it excluded) to the closing brace. Read by tests/test_runtime_layout.py.
// TypeScript 7 has no in-process parser; its (pinned) `unstable/sync` API asks the native compiler for the tree.
// Usage (from codegen/cloudflare): node function_lengths.mjs runtime/a.ts runtime/b.ts ...
import { resolve } from "node:path";
import { API } from "typescript/unstable/sync";
import { isFunctionLikeDeclaration } from "typescript/unstable/ast/is";

const api = new API({ cwd: process.cwd() });
try {
  const snapshot = api.updateSnapshot({ openProjects: [resolve("tsconfig.json")] });
  const program = snapshot.getProjects()[0].program;
  for (const file of process.argv.slice(2)) {
    const source = program.getSourceFile(resolve(file));
    if (!source) throw new Error(`${file} is not part of tsconfig.json's program`);
    const text = source.text;
    const lineOf = (pos) => text.slice(0, pos).split("\n").length;
    /** Where a node's own text begins: past the whitespace and comments its `pos` includes. */
    const startOf = (node) => {
      let i = node.pos;
      for (;;) {
        while (i < node.end && /\s/.test(text[i])) i++;
        if (text.startsWith("//", i)) i = text.indexOf("\n", i);
        else if (text.startsWith("/*", i)) i = text.indexOf("*/", i) + 2;
        else return i;
      }
    };
    const nameOf = (node) => {
      const named = node.name ?? (node.parent && node.parent.name);
      return named ? text.slice(startOf(named), named.end) : "<anonymous>";
    };
    const visit = (node) => {
      if (isFunctionLikeDeclaration(node) && node.body) {
        const first = lineOf(startOf(node));
        console.log(JSON.stringify({ file, name: nameOf(node), line: first, lines: lineOf(node.end) - first + 1 }));
      }
      node.forEachChild(visit);
    };
    visit(source);
  }
} finally {
  api.close();
}
