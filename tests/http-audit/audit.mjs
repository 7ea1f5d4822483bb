// Runs graphql-http's server audits (the GraphQL-over-HTTP spec's checks)
// against the URL given as the first argument, e.g.
//   node audit.mjs http://127.0.0.1:8080/graphql
// Prints one JSON line per audit and a summary line; exits 1 on any
// error or warning.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
let counts = { ok: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  console.log(JSON.stringify({ id: audit.id, name: audit.name, status: result.status, reason: result.reason }));
}
console.log(`audit: ${counts.ok} ok, ${counts.warn} warnings, ${counts.error} errors`);
process.exit(counts.warn + counts.error === 0 ? 0 : 1);
