//! A git worktree per session: parallel sessions in one repository each
//! on a branch of their own, merged back or discarded, cleaned up with
//! their session.

use std::{path::Path, process::Command};

use serde_json::{json, Value};

use crate::{
    auth::code,
    helpers::{spawn_app, TestApp},
};

const START: &str = "mutation($input: StartExecutionInput!) {
    startExecution(input: $input) { execution { id } session { id worktree { path branch baseCommit state } } } }";
const MERGE: &str =
    "mutation($id: ID!) { mergeSessionWorktree(id: $id, message: \"Take it\") { status worktree { state } } }";
const DISCARD: &str = "mutation($id: ID!) { discardSessionWorktree(id: $id) { status worktree { state } } }";

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A workspace at the top of a repository with one commit (`a.txt`).
async fn repository(app: &TestApp) -> (String, std::path::PathBuf) {
    let (workspace, dir) = app.workspace().await;
    init_repository(&dir);
    (workspace, dir)
}

fn init_repository(dir: &Path) {
    for args in [&["init", "-q"][..], &["config", "user.email", "t@example.com"], &["config", "user.name", "t"]] {
        git(dir, args).unwrap();
    }
    std::fs::write(dir.join(".git/info/exclude"), ".fake-claude/\n").unwrap();
    std::fs::write(dir.join("a.txt"), "a\n").unwrap();
    git(dir, &["add", "-A"]).unwrap();
    git(dir, &["commit", "-q", "-m", "start"]).unwrap();
}

async fn start(app: &TestApp, input: Value) -> (String, Value) {
    let started = app.ok(START, json!({ "input": input })).await;
    let execution = started["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_finished(&execution).await["status"], "COMPLETED");
    (execution, started["startExecution"]["session"].clone())
}

#[tokio::test]
async fn sessions_work_apart_and_merge_back() {
    if git(Path::new("."), &["--version"]).is_none() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let app = spawn_app().await;
    let (workspace, dir) = repository(&app).await;
    let head = git(&dir, &["rev-parse", "HEAD"]).unwrap();
    let input = json!({ "workspaceId": workspace, "prompt": "fake: edit=a.txt", "worktree": true });
    let (first_run, first) = start(&app, input.clone()).await;
    let (_, second) = start(&app, input).await;
    for session in [&first, &second] {
        let worktree = &session["worktree"];
        assert_eq!(worktree["baseCommit"], head.as_str());
        assert_eq!(worktree["state"], "ACTIVE");
        assert!(worktree["branch"].as_str().unwrap().starts_with("claude/"));
        let path = Path::new(worktree["path"].as_str().unwrap());
        assert!(path.starts_with(&dir), "{path:?}");
        assert_eq!(std::fs::read_to_string(path.join("a.txt")).unwrap(), "a\nedited by fake claude\n");
    }
    assert_ne!(first["worktree"]["path"], second["worktree"]["path"]);
    // Apart: the main checkout is untouched, and does not list the worktrees.
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a\n");
    assert_eq!(git(&dir, &["status", "--porcelain"]).unwrap(), "");
    let changes = app
        .ok(
            "query($id: ID!) { execution(id: $id) { changes { source files { path status } } } }",
            json!({ "id": first_run }),
        )
        .await;
    assert_eq!(changes["execution"]["changes"]["files"], json!([{ "path": "a.txt", "status": "MODIFIED" }]));

    // The first merges back.
    let merged = app.ok(MERGE, json!({ "id": first["id"] })).await;
    assert_eq!(merged["mergeSessionWorktree"], json!({ "status": "CLOSED", "worktree": { "state": "MERGED" } }));
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a\nedited by fake claude\n");
    assert!(!Path::new(first["worktree"]["path"].as_str().unwrap()).exists());
    assert_eq!(git(&dir, &["branch", "--list", first["worktree"]["branch"].as_str().unwrap()]).unwrap(), "");
    assert!(git(&dir, &["log", "-1", "--format=%s"]).unwrap().contains("Take it"));
    // A merged session takes no more runs.
    let closed = app
        .gql(START, json!({ "input": { "workspaceId": workspace, "sessionId": first["id"], "prompt": "more" } }))
        .await;
    assert_eq!(code(&closed), "SESSION_CLOSED", "{closed}");

    // The second, changed otherwise since, conflicts: the merge is undone
    // and its worktree stays, until discarded.
    let kept = Path::new(second["worktree"]["path"].as_str().unwrap());
    std::fs::write(kept.join("a.txt"), "a\nsomething else\n").unwrap();
    let conflict = app.gql(MERGE, json!({ "id": second["id"] })).await;
    assert_eq!(code(&conflict), "CONFLICT", "{conflict}");
    assert!(conflict["errors"][0]["message"].as_str().unwrap().contains("a.txt"), "{conflict}");
    assert_eq!(git(&dir, &["status", "--porcelain"]).unwrap(), "", "no merge left half done");
    assert!(kept.exists());
    let discarded = app.ok(DISCARD, json!({ "id": second["id"] })).await;
    assert_eq!(discarded["discardSessionWorktree"]["worktree"]["state"], "DISCARDED");
    assert!(!kept.exists());
    assert_eq!(git(&dir, &["branch", "--list", "claude/*"]).unwrap(), "");
    assert_eq!(code(&app.gql(DISCARD, json!({ "id": second["id"] })).await), "BAD_USER_INPUT");
}

#[tokio::test]
async fn worktrees_by_default_refusals_and_cleanup() {
    if git(Path::new("."), &["--version"]).is_none() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let app = spawn_app().await;
    let (workspace, dir) = repository(&app).await;
    let update = "mutation($id: ID!) { updateWorkspace(id: $id, input: { useWorktrees: true }) { useWorktrees } }";
    assert_eq!(app.ok(update, json!({ "id": workspace })).await["updateWorkspace"]["useWorktrees"], true);
    let (_, session) = start(&app, json!({ "workspaceId": workspace, "prompt": "hello" })).await;
    let path = session["worktree"]["path"].as_str().unwrap().to_owned();
    assert!(Path::new(&path).is_dir(), "the workspace's default gave it one");
    // Refusals: a start in an existing session or a fork, a bad base, a non-repository.
    for (input, field) in [
        (json!({ "sessionId": session["id"], "worktree": true }), "worktree"),
        // Claude keeps the conversation in the worktree, where a fork would not look.
        (json!({ "forkSessionId": session["id"] }), "forkSessionId"),
        (json!({ "worktree": true, "baseRef": "no-such-branch" }), "baseRef"),
        (json!({ "worktree": true, "baseRef": "--output=/tmp/x" }), "baseRef"),
    ] {
        let mut full = json!({ "workspaceId": workspace, "prompt": "x" });
        full.as_object_mut().unwrap().extend(input.as_object().unwrap().clone());
        let refused = app.gql(START, json!({ "input": full })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{input}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], field, "{input}: {refused}");
    }
    let (plain, _) = app.workspace().await;
    let refused = app.gql(START, json!({ "input": { "workspaceId": plain, "prompt": "x", "worktree": true } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("not a git repository"), "{refused}");
    // Deleting the session removes its worktree and branch.
    app.ok("mutation($id: ID!) { deleteSession(id: $id) { deletedId } }", json!({ "id": session["id"] })).await;
    assert!(!Path::new(&path).exists());
    assert_eq!(git(&dir, &["branch", "--list", "claude/*"]).unwrap(), "");
}

#[tokio::test]
async fn only_the_owner_merges_and_never_under_a_running_run() {
    if git(Path::new("."), &["--version"]).is_none() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let app = crate::auth::secured(|_| {}).await;
    let (alice, bob) = (crate::auth::token_for("alice"), crate::auth::token_for("bob"));
    let (workspace, dir) = app.workspace_of(&alice, "alices-repo").await;
    init_repository(&dir);
    let input = json!({ "input": { "workspaceId": workspace, "prompt": "fake: hang", "worktree": true } });
    let started = crate::auth::as_user(&app, &alice, START, input).await;
    let session = started["data"]["startExecution"]["session"]["id"].clone();
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    for mutation in [MERGE, DISCARD] {
        let refused = crate::auth::as_user(&app, &bob, mutation, json!({ "id": session })).await;
        assert_eq!(code(&refused), "NOT_FOUND", "{refused}");
        let busy = crate::auth::as_user(&app, &alice, mutation, json!({ "id": session })).await;
        assert_eq!(code(&busy), "SESSION_BUSY", "{busy}");
    }
    let cancel = "mutation($id: ID!) { cancelExecution(id: $id) { id } }";
    crate::auth::as_user(&app, &alice, cancel, json!({ "id": execution })).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let done = crate::auth::as_user(&app, &alice, DISCARD, json!({ "id": session })).await;
        if done.get("errors").is_none() {
            assert_eq!(done["data"]["discardSessionWorktree"]["worktree"]["state"], "DISCARDED");
            break;
        }
        assert_eq!(code(&done), "SESSION_BUSY", "{done}");
        assert!(tokio::time::Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
