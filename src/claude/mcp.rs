//! MCP servers a run may use: their configuration as the CLI reads it
//! (`--mcp-config`), and the operator's allow-list that every one passes.
//!
//! A stdio server is a program the CLI starts on this machine, so only
//! commands the operator lists (MCP_STDIO_COMMANDS) may be named; a URL
//! server must match one of the operator's patterns (MCP_ALLOWED_URLS).
//! With neither configured, runs get no MCP servers at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// MCP servers per run, at most.
pub const MAX_SERVERS: usize = 20;

/// One MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    pub name: String,
    /// A stdio server: the program (one of the operator's) and its
    /// arguments and environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A remote server: its URL, `http` (default) or `sse`, and headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A URL pattern: scheme, host (`*.example.com` for its subdomains), port
/// and a path prefix.
#[derive(Debug, Clone)]
struct UrlPattern {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

impl UrlPattern {
    fn parse(pattern: &str) -> Option<UrlPattern> {
        // `*` is not a host character: read the pattern with a stand-in.
        let wildcard = pattern.contains("://*.");
        let url = url::Url::parse(&pattern.replacen("://*.", "://wildcard.", 1)).ok()?;
        let host = url.host_str()?.to_owned();
        let host = if wildcard { host.replacen("wildcard.", "*.", 1) } else { host };
        Some(UrlPattern {
            scheme: url.scheme().to_owned(),
            host,
            port: url.port_or_known_default(),
            path: url.path().to_owned(),
        })
    }

    fn matches(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            None => host == self.host,
        };
        url.scheme() == self.scheme
            && host_ok
            && url.port_or_known_default() == self.port
            && url.path().starts_with(&self.path)
    }
}

/// What the operator lets runs use.
#[derive(Debug, Clone, Default)]
pub struct McpPolicy {
    /// Programs a stdio server may be (absolute paths).
    commands: Vec<String>,
    urls: Vec<UrlPattern>,
}

impl McpPolicy {
    /// From the configured lists; a pattern that is not a URL is an error.
    pub fn new(commands: &[String], urls: &[String]) -> Result<McpPolicy, String> {
        let urls = urls
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|u| UrlPattern::parse(u.trim()).ok_or_else(|| format!("MCP_ALLOWED_URLS: `{u}` is not a URL pattern")))
            .collect::<Result<_, _>>()?;
        let commands: Vec<String> = commands.iter().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
        if let Some(relative) = commands.iter().find(|c| !c.starts_with('/')) {
            return Err(format!("MCP_STDIO_COMMANDS: `{relative}` is not an absolute path"));
        }
        Ok(McpPolicy { commands, urls })
    }

    /// Checks servers (the `mcpServers` of an input); the error names the
    /// offending field (`mcpServers.0.command`) and says why.
    pub fn check(&self, servers: &[McpServer]) -> Result<(), (String, String)> {
        if servers.len() > MAX_SERVERS {
            return Err(("mcpServers".into(), format!("at most {MAX_SERVERS} MCP servers")));
        }
        let mut names = std::collections::HashSet::new();
        for (i, server) in servers.iter().enumerate() {
            let at = |field: &str| {
                if field.is_empty() {
                    format!("mcpServers.{i}")
                } else {
                    format!("mcpServers.{i}.{field}")
                }
            };
            let name_ok = !server.name.is_empty()
                && server.name.len() <= 64
                && server.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
            if !name_ok {
                return Err((at("name"), "a name is 1 to 64 letters, digits, `-` or `_`".into()));
            }
            if !names.insert(server.name.as_str()) {
                return Err((at("name"), format!("`{}` is named twice", server.name)));
            }
            let texts = server.args.iter().chain(server.env.keys()).chain(server.env.values());
            let texts = texts.chain(server.headers.keys()).chain(server.headers.values());
            if texts.clone().any(|t| t.contains('\0')) || texts.map(String::len).sum::<usize>() > 64 * 1024 {
                return Err((at(""), "arguments, environment and headers: no NUL, 64 KiB in all".into()));
            }
            if let Some(name) = server.env.keys().find(|name| !safe_env_name(name)) {
                return Err((at("env"), format!("`{name}` may not be set: it could make the program run other code")));
            }
            match (&server.command, &server.url) {
                (Some(command), None) => {
                    if !server.headers.is_empty() || server.transport.is_some() {
                        return Err((at("headers"), "`headers` and `transport` go with `url`".into()));
                    }
                    if !self.commands.iter().any(|c| c == command) {
                        return Err((at("command"), format!("`{command}` is not one of the server's MCP commands")));
                    }
                }
                (None, Some(url)) => {
                    if !server.args.is_empty() || !server.env.is_empty() {
                        return Err((at("args"), "`args` and `env` go with `command`".into()));
                    }
                    if !matches!(server.transport.as_deref(), None | Some("http" | "sse")) {
                        return Err((at("transport"), "`transport` is http or sse".into()));
                    }
                    let parsed = url::Url::parse(url).map_err(|_| (at("url"), format!("`{url}` is not a URL")))?;
                    let allowed = parsed.username().is_empty()
                        && parsed.password().is_none()
                        && self.urls.iter().any(|p| p.matches(&parsed));
                    if !allowed {
                        return Err((at("url"), format!("`{url}` is not allowed by the server's MCP URL patterns")));
                    }
                }
                _ => return Err((at(""), "give `command` or `url`, not both".into())),
            }
        }
        Ok(())
    }
}

/// Whether a stdio server's environment may hold this variable: a plain
/// name, and none that makes a loader, an interpreter or a shell run code
/// of the client's choosing (the command is the operator's; what it runs
/// must stay so).
fn safe_env_name(name: &str) -> bool {
    const CODE: [&str; 12] = [
        "PATH",
        "ENV",
        "BASH_ENV",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "PERL5OPT",
        "PERL5LIB",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
    ];
    const CODE_PREFIXES: [&str; 5] = ["LD_", "DYLD_", "PYTHON", "GIT_", "NPM_CONFIG_"];
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let upper = name.to_ascii_uppercase();
    plain && !CODE.contains(&upper.as_str()) && !CODE_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// `base` with `over`'s servers added, replacing those of the same name.
pub fn merge(base: Vec<McpServer>, over: &[McpServer]) -> Vec<McpServer> {
    let mut merged: Vec<McpServer> = base.into_iter().filter(|b| !over.iter().any(|o| o.name == b.name)).collect();
    merged.extend(over.iter().cloned());
    merged
}

/// The `--mcp-config` document for these servers.
pub fn config_json(servers: &[McpServer]) -> Value {
    let entries = servers.iter().map(|s| {
        let entry = match (&s.command, &s.url) {
            (Some(command), _) => json!({ "command": command, "args": s.args, "env": s.env }),
            (None, Some(url)) => {
                json!({ "type": s.transport.as_deref().unwrap_or("http"), "url": url, "headers": s.headers })
            }
            (None, None) => json!({}),
        };
        (s.name.clone(), entry)
    });
    json!({ "mcpServers": entries.collect::<serde_json::Map<_, _>>() })
}

/// Stored start options shown to clients: the values of MCP servers'
/// environment variables and headers (tokens, mostly) are left out, their
/// names kept.
pub fn redacted_options(options: &Value) -> Value {
    let mut options = options.clone();
    let servers = options.get_mut("mcpServers").and_then(Value::as_array_mut);
    for server in servers.into_iter().flatten() {
        for field in ["env", "headers"] {
            if let Some(map) = server.get_mut(field).and_then(Value::as_object_mut) {
                map.values_mut().for_each(|v| *v = json!("(hidden)"));
            }
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_server(url: &str) -> McpServer {
        McpServer {
            name: "web".into(),
            command: None,
            args: vec![],
            env: BTreeMap::new(),
            url: Some(url.into()),
            transport: None,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn urls_match_by_scheme_host_port_and_path() {
        let policy =
            McpPolicy::new(&[], &["https://mcp.example.com/tools/".into(), "https://*.corp.test".into()]).unwrap();
        let ok = |url: &str| policy.check(&[url_server(url)]).is_ok();
        assert!(ok("https://mcp.example.com/tools/search"));
        assert!(ok("https://a.corp.test/mcp"));
        assert!(ok("https://a.b.corp.test/"));
        assert!(!ok("https://corp.test/"), "the wildcard needs a subdomain");
        assert!(!ok("https://evilcorp.test/"));
        assert!(!ok("http://mcp.example.com/tools/"), "another scheme");
        assert!(!ok("https://mcp.example.com:8443/tools/"), "another port");
        assert!(!ok("https://mcp.example.com/other"));
        assert!(!ok("https://mcp.example.com.evil.test/tools/"));
        assert!(!ok("https://user:pw@mcp.example.com/tools/"));
        assert!(McpPolicy::new(&[], &["not a url".into()]).is_err());
        assert!(McpPolicy::new(&["relative/bin".into()], &[]).is_err());
    }

    #[test]
    fn the_config_is_what_the_cli_reads() {
        let mut stdio = url_server("");
        stdio.url = None;
        stdio.name = "files".into();
        stdio.command = Some("/usr/bin/mcp-files".into());
        stdio.args = vec!["--root".into(), "/srv".into()];
        let config = config_json(&[stdio, url_server("https://mcp.example.com/")]);
        assert_eq!(
            config["mcpServers"]["files"],
            json!({"command": "/usr/bin/mcp-files", "args": ["--root", "/srv"], "env": {}})
        );
        assert_eq!(
            config["mcpServers"]["web"],
            json!({"type": "http", "url": "https://mcp.example.com/", "headers": {}})
        );
    }
}
