//! What a client may grant Claude: tools pre-approved with `allowedTools`,
//! permission modes, and what an answer to a permission request may allow.
//!
//! Rules are read the way the CLI (2.1.331) reads `--allowedTools`: one
//! argument splits into rules at `,` and at spaces outside parentheses, and
//! parentheses do not nest (the first `)` closes). A value is accepted only
//! if the CLI would read it as exactly one rule, `Tool` or
//! `Tool(content)`, with nothing in it that could make the CLI read
//! another; the tool of every such rule must be grantable.

use std::path::{Component, Path};

use serde_json::Value;

/// Permission modes a client may ask for; `bypassPermissions` only when
/// the operator allows it.
const PERMISSION_MODES: &[&str] = &["default", "acceptEdits", "plan", "dontAsk", "auto"];
const BYPASS: &str = "bypassPermissions";
/// Longest accepted rule.
const MAX_RULE: usize = 200;

/// The operator's limits on what clients may grant.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    /// Tools a client may grant (pre-approve, or allow when asked); empty
    /// means any.
    pub grantable: Vec<String>,
    /// Whether `bypassPermissions` may be asked for.
    pub allow_bypass: bool,
    /// The MCP servers runs may use.
    pub mcp: super::mcp::McpPolicy,
}

/// One rule as the CLI reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule<'a> {
    pub tool: &'a str,
    pub content: Option<&'a str>,
}

impl ToolPolicy {
    /// The operator's limits, as configured.
    pub fn from_config(config: &crate::config::Config, mcp: super::mcp::McpPolicy) -> Self {
        Self { grantable: config.grantable_tools.clone(), allow_bypass: config.allow_bypass_permissions, mcp }
    }

    /// Checks `allowedTools` values; the error names the offending value.
    pub fn check_allowed_tools(&self, tools: &[String]) -> Result<(), String> {
        for value in tools {
            let rule = parse_single_rule(value).map_err(|why| format!("`{}` {why}", value.escape_debug()))?;
            if !self.may_grant(rule.tool) {
                return Err(format!("`{value}` may not be pre-approved on this server"));
            }
        }
        Ok(())
    }

    /// Checks the tools and permission mode of stored start options (a
    /// schedule's, an agent profile's) against the limits as they are now.
    pub fn check_options(&self, options: &super::RunOptions) -> Result<(), String> {
        if let Some(tools) = &options.allowed_tools {
            self.check_allowed_tools(tools)?;
        }
        if let Some(servers) = &options.mcp_servers {
            self.mcp.check(servers).map_err(|(field, why)| format!("{field}: {why}"))?;
        }
        options.permission_mode.as_deref().map_or(Ok(()), |mode| self.check_mode(mode))
    }

    /// Whether a client may ask for this permission mode.
    pub fn check_mode(&self, mode: &str) -> Result<(), String> {
        if PERMISSION_MODES.contains(&mode) || (mode == BYPASS && self.allow_bypass) {
            Ok(())
        } else {
            Err(format!("`{mode}` is not an allowed permission mode"))
        }
    }

    /// Whether a client may let Claude use `tool` (by answering ALLOW).
    pub fn may_grant(&self, tool: &str) -> bool {
        self.grantable.is_empty() || self.grantable.iter().any(|g| g == tool)
    }

    /// Checks one of the CLI's `permission_suggestions` before it is sent
    /// back as an `updatedPermissions` entry, and returns it as it will be
    /// sent: limited to this session (a change to a settings file would
    /// outlive the run and reach every later run of every user of this
    /// server), adding only rules for grantable tools, switching only to
    /// allowed modes, and adding only directories inside the workspace.
    pub fn check_suggestion(&self, suggestion: &Value, workspace: &Path) -> Result<Value, String> {
        let mut suggestion = suggestion.clone();
        let Some(object) = suggestion.as_object_mut() else { return Err("the suggestion is not an object".into()) };
        match object.get("type").and_then(Value::as_str) {
            Some("addRules") | Some("replaceRules") => {
                let rules = object.get("rules").and_then(Value::as_array).ok_or("the suggestion has no rules")?;
                for rule in rules {
                    let tool = rule.get("toolName").and_then(Value::as_str).unwrap_or_default();
                    if tool.is_empty() || !self.may_grant(tool) {
                        return Err(format!("the suggestion grants `{tool}`, which may not be granted on this server"));
                    }
                }
            }
            Some("removeRules") => {}
            Some("setMode") => {
                let mode = object.get("mode").and_then(Value::as_str).unwrap_or_default();
                self.check_mode(mode)?;
            }
            Some("addDirectories") => {
                let dirs =
                    object.get("directories").and_then(Value::as_array).ok_or("the suggestion has no directories")?;
                for dir in dirs {
                    let inside = dir.as_str().is_some_and(|d| {
                        let d = Path::new(d);
                        d.is_absolute()
                            && !d.components().any(|c| c == Component::ParentDir)
                            && d.starts_with(workspace)
                    });
                    if !inside {
                        return Err(format!("the suggestion adds {dir}, which is outside the workspace"));
                    }
                }
            }
            other => return Err(format!("suggestions of type {other:?} may not be applied")),
        }
        object.insert("destination".into(), Value::String("session".into()));
        Ok(suggestion)
    }
}

/// Reads `value` as the CLI would, and accepts it only as one rule.
pub fn parse_single_rule(value: &str) -> Result<Rule<'_>, &'static str> {
    if value.is_empty() || value.len() > MAX_RULE {
        return Err("is not a tool rule (1 to 200 characters)");
    }
    if value.chars().any(|c| c.is_control() || c == ',') {
        return Err("contains a comma or a control character");
    }
    if split_rules(value) != [value] {
        return Err("would be read as several rules (a space outside parentheses?)");
    }
    let rule = match value.find('(') {
        None if value.contains(')') => return Err("has a `)` without `(`"),
        None => Rule { tool: value, content: None },
        Some(open) => {
            let content = value[open + 1..].strip_suffix(')').ok_or("must end with `)`")?;
            if content.contains(['(', ')']) {
                return Err("has parentheses inside the rule's content");
            }
            Rule { tool: &value[..open], content: Some(content) }
        }
    };
    let name_ok = !rule.tool.is_empty() && rule.tool.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Err("does not start with a tool name");
    }
    Ok(rule)
}

/// The CLI's split of one `--allowedTools` argument into rules.
pub fn split_rules(argument: &str) -> Vec<&str> {
    let mut rules = Vec::new();
    let mut start: Option<usize> = None;
    let mut in_parens = false;
    for (i, c) in argument.char_indices() {
        match c {
            '(' | ')' => {
                in_parens = c == '(';
                start.get_or_insert(i);
            }
            ',' | ' ' if !in_parens => {
                if let Some(from) = start.take() {
                    rules.push(&argument[from..i]);
                }
            }
            _ if start.is_none() && c.is_whitespace() => {}
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(from) = start {
        rules.push(&argument[from..]);
    }
    rules.into_iter().map(str::trim).filter(|r| !r.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_cli() {
        assert_eq!(split_rules(" \tBash , ,Edit "), ["Bash", "Edit"]);
        assert_eq!(split_rules("Bash(git log:*) Read"), ["Bash(git log:*)", "Read"]);
        assert_eq!(split_rules("Bash(echo (a) b)"), ["Bash(echo (a)", "b)"]);
        assert_eq!(split_rules("Bash(ls, Edit"), ["Bash(ls, Edit"]);
        assert_eq!(split_rules("Bash\tEdit"), ["Bash\tEdit"]);
    }

    #[test]
    fn accepts_one_rule_only() {
        assert_eq!(parse_single_rule("Read"), Ok(Rule { tool: "Read", content: None }));
        assert_eq!(parse_single_rule("Bash(git log:*)"), Ok(Rule { tool: "Bash", content: Some("git log:*") }));
        assert_eq!(parse_single_rule("mcp__github__get_issue").map(|r| r.tool), Ok("mcp__github__get_issue"));
        for bad in [
            "Read(x) Bash(cat:*)",
            "Read(x)\tBash(cat:*)",
            "Read(x)\nBash",
            "Read Bash",
            "Read,Bash",
            "Bash(echo (a) b)",
            "Bash(x)y",
            "Bash(ls",
            "Bash)",
            " Read",
            "(x)",
            "Read*",
            "",
        ] {
            assert!(parse_single_rule(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grants_only_grantable_tools() {
        let policy = ToolPolicy { grantable: vec!["Read".into()], allow_bypass: false, mcp: Default::default() };
        assert!(policy.check_allowed_tools(&["Read(src/*)".into()]).is_ok());
        assert!(policy.check_allowed_tools(&["Read(x) Bash(cat:*)".into()]).is_err());
        assert!(policy.check_allowed_tools(&["Bash".into()]).is_err());
        let add = serde_json::json!({"type": "addRules", "rules": [{"toolName": "Bash"}], "behavior": "allow", "destination": "userSettings"});
        let ws = Path::new("/srv/w");
        assert!(policy.check_suggestion(&add, ws).is_err());
        let read = serde_json::json!({"type": "addRules", "rules": [{"toolName": "Read"}], "behavior": "allow", "destination": "userSettings"});
        assert_eq!(policy.check_suggestion(&read, ws).unwrap()["destination"], "session");
        let bypass = serde_json::json!({"type": "setMode", "mode": "bypassPermissions", "destination": "session"});
        assert!(policy.check_suggestion(&bypass, ws).is_err());
        let dirs = serde_json::json!({"type": "addDirectories", "directories": ["/"], "destination": "session"});
        assert!(policy.check_suggestion(&dirs, ws).is_err());
        let up =
            serde_json::json!({"type": "addDirectories", "directories": ["/srv/w/../x"], "destination": "session"});
        assert!(policy.check_suggestion(&up, ws).is_err());
        let inside =
            serde_json::json!({"type": "addDirectories", "directories": ["/srv/w/sub"], "destination": "session"});
        assert!(policy.check_suggestion(&inside, ws).is_ok());
    }
}
