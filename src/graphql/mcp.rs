//! MCP servers in the API: the input that configures one (per workspace,
//! start or agent profile), and how a configured one is shown.

use async_graphql::{Enum, InputObject, SimpleObject};

use crate::claude::mcp::McpServer;

/// A name and a value (an environment variable, a header).
#[derive(InputObject)]
pub struct KeyValueInput {
    pub name: String,
    pub value: String,
}

/// How a remote MCP server is reached.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum McpTransport {
    /// Streamable HTTP.
    Http,
    /// Server-sent events.
    Sse,
}

/// An MCP server for Claude: a program on the server (`command`, one that
/// the operator lists in MCP_STDIO_COMMANDS) or a remote one (`url`,
/// matching one of MCP_ALLOWED_URLS).
#[derive(InputObject)]
pub struct McpServerInput {
    /// How Claude names it (its tools are `mcp__<name>__…`): 1 to 64
    /// letters, digits, `-` or `_`.
    pub name: String,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    /// The program's environment. Not shown back (only the names are).
    pub env: Option<Vec<KeyValueInput>>,
    pub url: Option<String>,
    /// HTTP when not given.
    pub transport: Option<McpTransport>,
    /// Sent with each request (e.g. `Authorization`). Not shown back (only
    /// the names are).
    pub headers: Option<Vec<KeyValueInput>>,
}

impl From<McpServerInput> for McpServer {
    fn from(input: McpServerInput) -> McpServer {
        let pairs = |list: Option<Vec<KeyValueInput>>| {
            list.unwrap_or_default().into_iter().map(|kv| (kv.name, kv.value)).collect()
        };
        McpServer {
            name: input.name,
            command: input.command,
            args: input.args.unwrap_or_default(),
            env: pairs(input.env),
            url: input.url,
            transport: input.transport.map(|t| if t == McpTransport::Sse { "sse" } else { "http" }.to_owned()),
            headers: pairs(input.headers),
        }
    }
}

/// A configured MCP server, without its secrets.
#[derive(SimpleObject)]
pub struct McpServerConfig {
    pub name: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    /// The names of the environment variables it is given.
    pub env_names: Vec<String>,
    pub url: Option<String>,
    pub transport: Option<McpTransport>,
    /// The names of the headers sent to it.
    pub header_names: Vec<String>,
}

impl From<McpServer> for McpServerConfig {
    fn from(server: McpServer) -> McpServerConfig {
        McpServerConfig {
            name: server.name,
            command: server.command,
            args: server.args,
            env_names: server.env.into_keys().collect(),
            transport: server.url.as_ref().map(|_| {
                if server.transport.as_deref() == Some("sse") {
                    McpTransport::Sse
                } else {
                    McpTransport::Http
                }
            }),
            url: server.url,
            header_names: server.headers.into_keys().collect(),
        }
    }
}

/// Servers stored as JSON (a workspace's), as the API shows them.
pub fn shown(stored: Option<&serde_json::Value>) -> Vec<McpServerConfig> {
    let servers: Vec<McpServer> = stored.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    servers.into_iter().map(Into::into).collect()
}
