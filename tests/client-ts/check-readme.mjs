// The README's examples are the tested ones: every ```graphql block must
// validate against schema.graphql, and every line of code in a ```ts block
// must be a line of the client that CI runs (comments and "..." aside).
import { readFileSync, readdirSync } from "node:fs";
import { buildSchema, parse, validate } from "graphql";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const schema = buildSchema(readFileSync(new URL("../../schema.graphql", import.meta.url), "utf8"));
const sources = readdirSync(new URL("src/", import.meta.url))
  .filter((f) => f.endsWith(".ts"))
  .flatMap((f) => readFileSync(new URL(`src/${f}`, import.meta.url), "utf8").split("\n"))
  .map(code);

// A line without its indentation and trailing comment.
function code(line) {
  return line.replace(/\s+\/\/ .*$/, "").trim();
}

const problems = [];
for (const [, lang, body, at] of blocks(readme)) {
  if (lang === "graphql") {
    try {
      for (const error of validate(schema, parse(body))) problems.push(`README line ${at}: ${error.message}`);
    } catch (error) {
      problems.push(`README line ${at}: ${error.message}`);
    }
  } else if (lang === "ts" || lang === "js") {
    body.split("\n").forEach((line, i) => {
      const wanted = code(line);
      if (!wanted || wanted.startsWith("//") || sources.includes(wanted)) return;
      problems.push(`README line ${at + i + 1}: not in tests/client-ts/src: ${wanted}`);
    });
  }
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("README examples: ok");

function* blocks(text) {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.indexOf("```", i + 1);
    yield [null, open[1], lines.slice(i + 1, end).join("\n"), i + 1];
    i = end;
  }
}
