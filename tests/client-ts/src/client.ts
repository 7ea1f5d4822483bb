// A minimal claude-graphql client: create a workspace, start a run that asks
// before each tool, allow every tool (answering Claude's questions with their
// first option), and print the run's events as JSON lines.
//
//   TOKEN=... node dist/client.js http://127.0.0.1:1234 /path/to/project "prompt"
//
// Every operation is a TypedDocumentNode generated from ../documents, so the
// variables and results below are checked against ../../schema.graphql.
import { basename } from "node:path";
import type { ResultOf, TypedDocumentNode, VariablesOf } from "@graphql-typed-document-node/core";
import { print, type FormattedExecutionResult } from "graphql";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import {
  AnswerPermissionRequestDocument,
  CreateWorkspaceDocument,
  ExecutionEventsDocument,
  StartExecutionDocument,
  type ExecutionStatus,
  type RequestFragment,
} from "./gql/graphql.js";

const [baseUrl, workspacePath, prompt] = process.argv.slice(2);
if (!baseUrl || !workspacePath || !prompt) {
  console.error("usage: node dist/client.js <base-url> <workspace-path> <prompt>\n" +
    "  e.g. TOKEN=... node dist/client.js http://127.0.0.1:1234 /srv/project 'Fix the tests'");
  process.exit(2);
}

// Keep any path prefix of the base URL: resolve relative to it.
const base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
const httpUrl = new URL("graphql", base);
const wsUrl = new URL("graphql/ws", base);
wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
const authorization = process.env.TOKEN ? `Bearer ${process.env.TOKEN}` : undefined;

const TERMINAL: ReadonlySet<ExecutionStatus> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** The answer a person would give; here: yes, and the first option. */
function answerFor(request: RequestFragment): VariablesOf<typeof AnswerPermissionRequestDocument> {
  switch (request.kind) {
    case "QUESTION":
      return {
        id: request.id,
        decision: "ALLOW",
        answers: request.questions.map((q) => ({ question: q.question, selected: q.options.slice(0, 1).map((o) => o.label) })),
      };
    case "PLAN":
    case "TOOL_USE":
      return { id: request.id, decision: "ALLOW" };
    default:
      return request.kind satisfies never;
  }
}

function fail(what: string, detail: unknown): never {
  // A socket close is not an Error and has no own enumerable fields.
  if (detail instanceof Error) detail = detail.message;
  else if (detail && typeof detail === "object" && "code" in detail && "reason" in detail) {
    detail = { code: detail.code, reason: detail.reason };
  }
  console.error(`${what}: ${JSON.stringify(detail)}`);
  process.exit(1);
}

/** One query or mutation over HTTP POST; any GraphQL error ends the program. */
async function request<R, V>(document: TypedDocumentNode<R, V>, variables: NoInfer<V>): Promise<R> {
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json, application/json",
      ...(authorization ? { authorization } : {}),
    },
    body: JSON.stringify({ query: print(document), variables }),
  });
  // Errors come with a JSON body too, whatever the HTTP status.
  const body = (await response.json().catch(() => fail("HTTP", response.status))) as FormattedExecutionResult<R>;
  if (body.errors?.length || !body.data) fail("GraphQL errors", body.errors ?? response.status);
  return body.data;
}

const { createWorkspace: workspace } = await request(CreateWorkspaceDocument, {
  input: { name: `client-ts ${basename(workspacePath)}`, path: workspacePath },
});
const { startExecution: { execution } } = await request(StartExecutionDocument, {
  input: { workspaceId: workspace.id, prompt, requireApproval: true },
});

const client = createClient({
  url: wsUrl.href,
  webSocketImpl: WebSocket,
  connectionParams: authorization ? { Authorization: authorization } : {},
  // Ride out server restarts and network blips; the subscription resumes.
  retryAttempts: 10,
});

// graphql-ws re-sends this same payload on every (re)subscribe, serialising
// it each time, so the getter makes a reconnect resume after the last seq
// seen instead of replaying the run from the start.
let lastSeq = 0;
const variables: VariablesOf<typeof ExecutionEventsDocument> = {
  executionId: execution.id,
  get afterSeq() { return lastSeq; },
};
const answered = new Set<string>();
let repeated = 0; // messages the server sent again (none, with the getter)
let final: ExecutionStatus | undefined;

const events = client.iterate<ResultOf<typeof ExecutionEventsDocument>>({
  query: print(ExecutionEventsDocument),
  variables,
});
try {
  for await (const result of events) {
    if (result.errors?.length || !result.data) fail("GraphQL errors", result.errors);
    const event = result.data.executionEvents;
    // Stored messages may come again around a reconnect: drop what was
    // already printed. Partial-token events have no seq and are live only.
    if (event.__typename === "MessageEvent" && event.seq != null) {
      if (event.seq <= lastSeq) {
        repeated += 1;
        continue;
      }
      lastSeq = event.seq;
    }
    console.log(JSON.stringify(event));
    switch (event.__typename) {
      case "PermissionRequestEvent": {
        // Pending requests are announced again on every subscribe: answer once.
        const { id, status } = event.request;
        if (status === "PENDING" && !answered.has(id)) {
          answered.add(id);
          await request(AnswerPermissionRequestDocument, answerFor(event.request));
        }
        break;
      }
      case "StatusEvent":
        if (TERMINAL.has(event.status)) final = event.status;
        break;
      case "MessageEvent":
      case "ProgressEvent":
        break;
      default:
        event satisfies never; // a new union member in the schema fails the typecheck here
    }
    if (final) break; // the terminal StatusEvent is the last one
  }
} catch (error) {
  // The server's `error` message (GraphQL errors), or a fatal socket close.
  fail("subscription failed", error);
}
await client.dispose();

if (!final) fail("subscription ended without a terminal status", null);
console.log(JSON.stringify({ final, repeated }));
