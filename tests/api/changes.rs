//! What a run changed: from git snapshots in a repository (every change,
//! the user's index untouched), else from its Write and Edit results.

use std::process::Command;

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, TestApp},
    on_every_db,
};

const CHANGES: &str = "{ status changes { source files { path status additions deletions } diff diffTruncated } }";

fn git(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn changes_of(app: &TestApp, execution: &str) -> Value {
    app.wait_finished(execution).await;
    let query = format!("query($id: ID!) {{ execution(id: $id) {CHANGES} }}");
    app.ok(&query, json!({ "id": execution })).await["execution"].clone()
}

#[tokio::test]
async fn git_snapshots_see_every_change() {
    if git(std::path::Path::new("."), &["--version"]).is_none() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let app = spawn_app().await;
    let (workspace, dir) = app.workspace().await;
    for args in [&["init", "-q"][..], &["config", "user.email", "t@example.com"], &["config", "user.name", "t"]] {
        git(&dir, args).unwrap();
    }
    std::fs::write(dir.join(".git/info/exclude"), ".fake-claude/\n").unwrap();
    std::fs::write(dir.join("keep.txt"), "a\n").unwrap();
    std::fs::write(dir.join("old.txt"), "x\n").unwrap();
    git(&dir, &["add", "-A"]).unwrap();
    git(&dir, &["commit", "-q", "-m", "start"]).unwrap();
    // An uncommitted change before the run is not the run's.
    std::fs::write(dir.join("keep.txt"), "a\nb\n").unwrap();

    let (first, session) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: edit=keep.txt,new.txt rm=old.txt" })).await;
    let done = changes_of(&app, &first).await;
    assert_eq!(done["status"], "COMPLETED");
    let changes = &done["changes"];
    assert_eq!(changes["source"], "GIT");
    assert_eq!(
        changes["files"],
        json!([
            { "path": "keep.txt", "status": "MODIFIED", "additions": 1, "deletions": 0 },
            { "path": "new.txt", "status": "ADDED", "additions": 1, "deletions": 0 },
            { "path": "old.txt", "status": "DELETED", "additions": 0, "deletions": 1 },
        ]),
        "the deletion a shell command made is seen too: {changes}"
    );
    let diff = changes["diff"].as_str().unwrap();
    assert!(diff.contains("+edited by fake claude") && !diff.contains("+b\n"), "{diff}");
    // The user's index and branch are as they were: nothing staged.
    let status = git(&dir, &["status", "--porcelain"]).unwrap();
    assert!(status.lines().all(|l| l.starts_with(' ') || l.starts_with("??")), "{status}");
    assert_eq!(git(&dir, &["rev-list", "--count", "HEAD"]).unwrap().trim(), "1");

    // The session's changes span its runs.
    let (second, _) =
        app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: edit=new.txt" })).await;
    changes_of(&app, &second).await;
    let query = "query($id: ID!) { session(id: $id) { changes { source files { path additions } } } }";
    let whole = app.ok(query, json!({ "id": session })).await;
    let files = &whole["session"]["changes"]["files"];
    assert_eq!(whole["session"]["changes"]["source"], "GIT");
    assert_eq!(files[1], json!({ "path": "new.txt", "additions": 2 }), "{whole}");
}

on_every_db!(without_git_the_tool_results_tell);

async fn without_git_the_tool_results_tell(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    std::fs::write(dir.join("b.txt"), "b\n").unwrap();
    std::fs::write(dir.join("c.txt"), "one\ntwo\n").unwrap();
    let (execution, session) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: edit=a.txt,c.txt rm=b.txt" })).await;
    let changes = changes_of(&app, &execution).await["changes"].clone();
    assert_eq!(changes["source"], "TOOLS");
    assert_eq!(
        changes["files"],
        json!([
            { "path": "a.txt", "status": "ADDED", "additions": 1, "deletions": 0 },
            { "path": "c.txt", "status": "MODIFIED", "additions": 1, "deletions": 0 },
        ])
    );
    let diff = changes["diff"].as_str().unwrap();
    assert!(diff.contains("--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1,1 @@\n+edited by fake claude\n"), "{diff}");
    assert!(diff.contains("--- a/c.txt\n+++ b/c.txt\n@@ -1,2 +1,3 @@\n one\n two\n+edited by fake claude\n"), "{diff}");

    // A run that changed nothing has no changes; the session adds its runs up.
    let (quiet, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "hello" })).await;
    assert_eq!(changes_of(&app, &quiet).await["changes"], Value::Null);
    let (again, _) =
        app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: edit=a.txt" })).await;
    changes_of(&app, &again).await;
    let whole = app
        .ok(
            "query($id: ID!) { session(id: $id) { changes { files { path status additions } } } }",
            json!({ "id": session }),
        )
        .await;
    assert_eq!(whole["session"]["changes"]["files"][0], json!({ "path": "a.txt", "status": "ADDED", "additions": 2 }));
}
