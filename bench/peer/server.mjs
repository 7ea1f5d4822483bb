// The benchmark's peer: what a user would write in Node to put claude
// behind GraphQL. graphql-js executes every event (graphql-ws's useServer),
// `ws` carries the sockets, each stdout line of the stand-in claude is
// parsed and published to the run's subscribers. It keeps the lines in
// memory (for subscribers that come late) and stores nothing.
//
//   FAKE_CLAUDE=target/release/fake-claude node server.mjs
//
// It speaks the part of claude-graphql's API the bench uses: createWorkspace,
// startExecution, execution, and executionEvents (MessageEvent, StatusEvent).
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { buildSchema, graphql } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

const schema = buildSchema(`
  scalar JSON
  input CreateWorkspaceInput { name: String! path: String! }
  input StartExecutionInput { workspaceId: ID! prompt: String! }
  type Workspace { id: ID! name: String! path: String! }
  type Session { id: ID! }
  type Execution { id: ID! status: String! messageCount: Int! startedAt: String finishedAt: String }
  type StartExecutionPayload { execution: Execution! session: Session! }
  type MessageEvent { seq: Int executionId: ID! type: String! message: JSON! }
  type StatusEvent { executionId: ID! status: String! }
  union ExecutionEvent = MessageEvent | StatusEvent
  type Query { execution(id: ID!): Execution }
  type Mutation {
    createWorkspace(input: CreateWorkspaceInput!): Workspace!
    startExecution(input: StartExecutionInput!): StartExecutionPayload!
  }
  type Subscription { executionEvents(executionId: ID!, afterSeq: Int = 0): ExecutionEvent! }
`);
schema.getType("ExecutionEvent").resolveType = (event) => event.__typename;

const workspaces = new Map();
const runs = new Map();

function startRun(workspace, prompt) {
  const run = { id: randomUUID(), status: "RUNNING", lines: [], waiters: new Set(), startedAt: new Date().toISOString() };
  runs.set(run.id, run);
  const child = spawn(process.env.FAKE_CLAUDE, ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"],
    { cwd: workspace.path, stdio: ["pipe", "pipe", "ignore"] });
  child.stdin.write(JSON.stringify({ type: "user", message: { role: "user", content: prompt }, uuid: randomUUID(), session_id: "", parent_tool_use_id: null }) + "\n");
  createInterface({ input: child.stdout }).on("line", (text) => {
    let message;
    try { message = JSON.parse(text); } catch { message = text; }
    publish(run, { __typename: "MessageEvent", seq: run.lines.length + 1, executionId: run.id, type: message?.type ?? "invalid_json", message });
    if (message?.type === "result") child.stdin.end();
  });
  child.on("exit", (code) => {
    run.status = code === 0 ? "COMPLETED" : "FAILED";
    run.finishedAt = new Date().toISOString();
    publish(run, { __typename: "StatusEvent", executionId: run.id, status: run.status });
  });
  return run;
}

function publish(run, event) {
  if (event.__typename === "MessageEvent") run.lines.push(event);
  else run.final = event;
  for (const wake of run.waiters) wake();
}

// Replays the lines after `afterSeq`, then follows; ends after the status.
async function* events(run, afterSeq) {
  let next = afterSeq;
  for (;;) {
    while (next < run.lines.length) yield { executionEvents: run.lines[next++] };
    if (run.final) { yield { executionEvents: run.final }; return; }
    await new Promise((resolve) => { const wake = () => { run.waiters.delete(wake); resolve(); }; run.waiters.add(wake); });
  }
}

const root = {
  execution: ({ id }) => { const r = runs.get(id); return r && { ...r, messageCount: r.lines.length }; },
  createWorkspace: ({ input }) => { const w = { id: randomUUID(), ...input }; workspaces.set(w.id, w); return w; },
  startExecution: ({ input }) => {
    const run = startRun(workspaces.get(input.workspaceId), input.prompt);
    return { execution: { ...run, messageCount: 0 }, session: { id: randomUUID() } };
  },
};

const http = createServer(async (req, res) => {
  if (req.method !== "POST" || req.url !== "/graphql") { res.writeHead(404).end(); return; }
  let body = "";
  for await (const chunk of req) body += chunk;
  const { query, variables } = JSON.parse(body);
  const result = await graphql({ schema, source: query, rootValue: root, variableValues: variables });
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result));
});
const wss = new WebSocketServer({ server: http, path: "/graphql/ws" });
useServer({
  schema,
  roots: { subscription: { executionEvents: ({ executionId, afterSeq }) => events(runs.get(executionId), afterSeq ?? 0) } },
}, wss);
http.listen(0, "127.0.0.1", () => {
  // The same startup line the bench reads from claude-graphql's log.
  console.error(JSON.stringify({ fields: { address: `127.0.0.1:${http.address().port}` } }));
});
