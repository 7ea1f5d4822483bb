import type { CodegenConfig } from "@graphql-codegen/cli";

// Everything is local: the schema is the server's checked-in SDL, so
// codegen never needs a running server or the network.
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["documents/*.graphql"],
  generates: {
    "src/gql/": {
      preset: "client",
      // Operations live in .graphql files, not in graphql() calls, and have
      // no fragments: the masking helpers would be dead code.
      presetConfig: { fragmentMasking: false },
      config: {
        // Fail on any custom scalar not mapped here, instead of typing it `any`.
        strictScalars: true,
        scalars: {
          JSON: "unknown",
          DateTime: "string",
          // A file of a multipart request (see the README on files in prompts).
          Upload: "Blob",
        },
        // Node ESM (module NodeNext) needs explicit `.js` in relative imports.
        emitLegacyCommonJSImports: false,
        // Works with `verbatimModuleSyntax` in tsconfig.json.
        useTypeImports: true,
      },
    },
  },
};

export default config;
