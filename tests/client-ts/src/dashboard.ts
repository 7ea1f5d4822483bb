// A live view of all my runs: prints one JSON line per change, keeping the
// latest state of each execution, and resumes after a reconnect from the
// cursor of the last update, so no change is missed.
//
//   TOKEN=... node dist/dashboard.js http://127.0.0.1:1234 [workspace-id]
import type { ResultOf, VariablesOf } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { DashboardEventsDocument } from "./gql/graphql.js";

const [baseUrl, workspaceId] = process.argv.slice(2);
if (!baseUrl) {
  console.error("usage: node dist/dashboard.js <base-url> [workspace-id]");
  process.exit(2);
}
const wsUrl = new URL("graphql/ws", baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";

type Update = Extract<ResultOf<typeof DashboardEventsDocument>["dashboardEvents"], { __typename: "ExecutionUpdate" }>;
const executions = new Map<string, Update["execution"]>();

// As with executionEvents: graphql-ws re-sends this payload on every
// (re)subscribe, so the getter resumes after the last update received.
let cursor: string | undefined;
const variables: VariablesOf<typeof DashboardEventsDocument> = {
  ...(workspaceId ? { workspaceId } : {}),
  get after() { return cursor; },
};

const client = createClient({
  url: wsUrl.href,
  webSocketImpl: WebSocket,
  connectionParams: process.env.TOKEN ? { Authorization: `Bearer ${process.env.TOKEN}` } : {},
  retryAttempts: Infinity,
});
for await (const result of client.iterate<ResultOf<typeof DashboardEventsDocument>>({
  query: print(DashboardEventsDocument),
  variables,
})) {
  if (result.errors?.length || !result.data) {
    console.error(JSON.stringify(result.errors));
    process.exit(1);
  }
  const event = result.data.dashboardEvents;
  switch (event.__typename) {
    case "ExecutionUpdate":
      cursor = event.cursor;
      executions.set(event.execution.id, event.execution);
      console.log(JSON.stringify({
        id: event.execution.id,
        status: event.execution.status,
        title: event.execution.session.title,
        waiting: event.pendingPermissionRequests.map((r) => r.kind),
      }));
      break;
    case "ProgressEvent":
      console.log(JSON.stringify({ id: event.executionId, progress: event.progress, messages: event.messageCount }));
      break;
    default:
      event satisfies never;
  }
}
