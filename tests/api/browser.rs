//! The live view and GraphiQL in headless Chromium, with every host but
//! this machine unreachable. Skipped (saying so) without chromium and
//! chromedriver; `.ci/run` installs them.

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| std::path::Path::new(dir).join(name)).find(|p| p.is_file())
}

/// A headless Chromium behind chromedriver, or None (and a note).
async fn browser() -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) = (find_program("chromium"), find_program("chromedriver")) else {
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    // Two TLS backends are linked into the tests; the driver is plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Its own process group: chromium and its helpers go with it.
    let driver = tokio::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic",
                format!("--user-data-dir={}", profile.path().display()),
                // The network is cut off: only this machine resolves.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        }),
    );
    for _ in 0..100 {
        if let Ok(client) = ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            return Some(Browser { client, _driver: Driver(driver), _profile: profile });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

/// chromedriver, in a process group of its own with the browser it starts.
struct Driver(tokio::process::Child);

impl Drop for Driver {
    /// Whatever the test did (a failed one never closes its session), no
    /// browser process outlives it.
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Browser {
    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` until it returns true.
    async fn wait_for(&self, script: &str, what: &str) {
        for _ in 0..300 {
            if self.eval(script).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let notice = self.eval("return document.querySelector('#notice')?.textContent ?? ''").await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-timeout.png"), png).unwrap();
        panic!("timed out waiting for {what} (the page says {notice}; see target/tmp/browser-timeout.png)");
    }

    /// Every resource the page loaded came from `origin`.
    async fn assert_only_from(&self, origin: &str) {
        let urls = self.eval("return performance.getEntriesByType('resource').map(e => e.name)").await;
        for url in urls.as_array().unwrap() {
            assert!(url.as_str().unwrap().starts_with(origin), "an outside request: {url}");
        }
    }
}

async fn start_in_live_view(browser: &Browser, app: &TestApp, workspace: &str, prompt: &str) {
    browser.client.goto(&app.url("/live")).await.unwrap();
    browser
        .wait_for(&format!("return [...document.querySelectorAll('#workspace-select option')].some(o => o.value === '{workspace}')"), "the workspace list")
        .await;
    browser.client.find(Locator::Css("#workspace-select")).await.unwrap().select_by_value(workspace).await.unwrap();
    send(browser, prompt).await;
}

/// Types `text` in the composer and sends it.
async fn send(browser: &Browser, text: &str) {
    browser.client.find(Locator::Css("#prompt")).await.unwrap().send_keys(text).await.unwrap();
    browser.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

async fn wait_status(browser: &Browser, status: &str) {
    let script = format!("return document.querySelector('#status').textContent.trim() === '{status}'");
    browser.wait_for(&script, &format!("the run to be {status}")).await;
}

/// Saves what the page looks like now, to look at
/// (`target/tmp/live-<name>.png`).
async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.client.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("live-{name}.png"));
    std::fs::write(&path, png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_streams_and_survives_a_dropped_connection() {
    let Some(browser) = browser().await else { return };
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    browser.client.set_window_size(1280, 860).await.unwrap();
    start_in_live_view(&browser, &app, &workspace, "fake: messages=60 delay_ms=40").await;

    browser.wait_for("return window.liveView.seqs.length >= 10", "the first messages").await;
    browser.eval("window.liveView.dropConnection(); return true").await;
    browser
        .wait_for("return document.querySelector('#status').textContent.trim() === 'COMPLETED'", "the run to complete")
        .await;

    let execution_id = browser.eval("return window.liveView.executionId").await;
    let execution = app.execution(execution_id.as_str().unwrap()).await;
    let total = execution["messageCount"].as_i64().unwrap();
    let seqs: Vec<i64> = serde_json::from_value(browser.eval("return window.liveView.seqs").await).unwrap();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "nothing lost or repeated across the reconnect");
    let rendered = browser.eval("return document.querySelectorAll('#messages [data-seq]').length").await;
    assert_eq!(rendered, json!(total));
    let reconnected = browser.eval("return document.querySelector('#connection').textContent.trim()").await;
    assert_eq!(reconnected, "closed", "the subscription completed after the final status");
    browser.assert_only_from(&app.url("")).await;

    // Cancel from the page.
    start_in_live_view(&browser, &app, &workspace, "fake: hang").await;
    browser
        .wait_for("return document.querySelector('#status').textContent.trim() === 'RUNNING'", "the run to start")
        .await;
    browser.client.find(Locator::Css("#cancel")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            "return document.querySelector('#status').textContent.trim() === 'CANCELLED'",
            "the run to be cancelled",
        )
        .await;
    browser.client.close().await.unwrap();
}

/// The live view as a chat: a session's whole conversation, tool calls with
/// their results, approvals (with an edited input), questions, follow-up
/// messages, interrupting, and the session list (titles, search, paging).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_is_a_chat() {
    let Some(browser) = browser().await else { return };
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    browser.client.set_window_size(1280, 860).await.unwrap();

    // A first prompt starts a session titled by it; its tool call shows
    // with the result inside.
    start_in_live_view(&browser, &app, &workspace, "fake: fixture=tool_bash").await;
    wait_status(&browser, "COMPLETED").await;
    browser
        .wait_for("return !!document.querySelector('.tool[data-result=ok] pre + .result-label')", "the tool result")
        .await;
    let conversation = browser.eval("return document.querySelector('#messages').innerText").await;
    let conversation = conversation.as_str().unwrap();
    assert!(conversation.contains("fake: fixture=tool_bash"), "the user's own prompt is shown: {conversation}");
    assert!(conversation.contains("I will run a command."), "{conversation}");
    browser
        .wait_for("return document.querySelector('#sessions li[data-session] .title')?.textContent === 'fake: fixture=tool_bash'", "the session's title")
        .await;

    // The next prompt continues the session: both runs show, in order.
    send(&browser, "And now a second question").await;
    wait_status(&browser, "COMPLETED").await;
    browser.wait_for("return document.querySelectorAll('#messages section.run').length === 2", "both runs").await;

    // A tool call waits for approval; the input is edited, then allowed.
    click(&browser, "#require-approval").await;
    send(&browser, "fake: ask=Bash").await;
    browser
        .wait_for("return !!document.querySelector('.permission[data-status=PENDING] .allow')", "the permission card")
        .await;
    screenshot(&browser, "permission").await;
    click(&browser, ".permission .edit").await;
    browser.eval("const t = document.querySelector('.permission .edit-input'); t.value = JSON.stringify({command: 'echo edited'}); return true").await;
    click(&browser, ".permission .allow").await;
    wait_status(&browser, "COMPLETED").await;
    browser
        .wait_for(
            "return document.querySelector('.permission').dataset.status === 'ALLOWED'",
            "the card to say allowed",
        )
        .await;
    browser
        .wait_for(
            "return document.querySelector('#messages').textContent.includes('ran: echo edited')",
            "the edited command's result",
        )
        .await;

    // A question: pick the options, answer.
    send(&browser, "fake: ask=AskUserQuestion").await;
    browser
        .wait_for(
            "return !!document.querySelector('.permission[data-kind=QUESTION][data-status=PENDING]')",
            "the question",
        )
        .await;
    screenshot(&browser, "question").await;
    click(&browser, ".permission[data-kind=QUESTION] input[value=Blue]").await;
    click(&browser, ".permission[data-kind=QUESTION] input[value=Large]").await;
    click(&browser, ".permission[data-kind=QUESTION] .allow").await;
    wait_status(&browser, "COMPLETED").await;
    browser
        .wait_for(
            "return document.querySelector('#messages').textContent.includes('\"Which sizes?\":\"Large\"')",
            "the answers reaching Claude",
        )
        .await;

    // A follow-up message while a run goes on is taken up by it.
    click(&browser, "#require-approval").await;
    send(&browser, "fake: messages=30 delay_ms=40").await;
    wait_status(&browser, "RUNNING").await;
    send(&browser, "one more thing").await;
    browser
        .wait_for(
            "return document.querySelector('.you.follow-up .state')?.textContent === 'completed'",
            "the follow-up to be answered",
        )
        .await;
    wait_status(&browser, "COMPLETED").await;

    // Interrupt ends the turn; the session stays usable.
    send(&browser, "fake: hang").await;
    wait_status(&browser, "RUNNING").await;
    click(&browser, "#interrupt").await;
    wait_status(&browser, "CANCELLED").await;
    screenshot(&browser, "chat").await;

    // The page itself never scrolls: the conversation scrolls in its pane,
    // under the status bar, never behind it.
    let layout = browser
        .eval(
            "const s = document.querySelector('#scroller'); s.scrollTop = 0;
             const bar = document.querySelector('#statusbar').getBoundingClientRect();
             const first = document.querySelector('#messages .you').getBoundingClientRect();
             return { page: document.scrollingElement.scrollHeight <= innerHeight + 1,
                      pane: s.scrollHeight > s.clientHeight, below: first.top >= bar.bottom };",
        )
        .await;
    assert_eq!(layout, json!({ "page": true, "pane": true, "below": true }));

    // Reopening the session (a reload) shows the same conversation.
    let before = browser.eval("return document.querySelectorAll('#messages .line[data-seq]').length").await;
    browser.client.refresh().await.unwrap();
    browser
        .wait_for(
            &format!("return document.querySelectorAll('#messages .line[data-seq]').length === {before}"),
            "the conversation after a reload",
        )
        .await;
    let prompts = browser.eval("return document.querySelectorAll('#messages .you.prompt').length").await;
    assert_eq!(prompts, json!(6));

    // Sessions: searched by title, paged.
    for i in 0..31 {
        let (id, _) = app.start(json!({ "workspaceId": workspace, "prompt": format!("Topic number {i}") })).await;
        app.wait_finished(&id).await;
    }
    browser.client.refresh().await.unwrap();
    browser
        .wait_for("return document.querySelectorAll('#sessions li[data-session]').length === 30", "a page of sessions")
        .await;
    click(&browser, "#more-sessions").await;
    browser
        .wait_for("return document.querySelectorAll('#sessions li[data-session]').length === 32", "the next page")
        .await;
    browser.client.find(Locator::Css("#session-search")).await.unwrap().send_keys("number 17").await.unwrap();
    browser
        .wait_for("return [...document.querySelectorAll('#sessions li[data-session] .title')].map(t => t.textContent).join() === 'Topic number 17'", "the search result")
        .await;
    click(&browser, "#sessions li[data-session]").await;
    browser
        .wait_for(
            "return document.querySelector('#session-title').textContent === 'Topic number 17'",
            "the found session",
        )
        .await;

    // A phone-sized window.
    browser.client.set_window_size(400, 800).await.unwrap();
    screenshot(&browser, "narrow").await;
    browser.assert_only_from(&app.url("")).await;
    browser.client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_queries_and_subscriptions_offline() {
    let Some(browser) = browser().await else { return };
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=3" })).await;
    app.wait_finished(&execution).await;

    browser.client.goto(&app.url("/")).await.unwrap();
    browser
        .wait_for("return !!document.querySelector('.graphiql-query-editor .CodeMirror')", "GraphiQL to render")
        .await;
    let response_text = "return document.querySelector('.graphiql-response')?.textContent || ''";

    // The default query, over HTTP.
    browser.wait_for("return !!document.querySelector('.graphiql-execute-button')", "the run button").await;
    browser.client.find(Locator::Css(".graphiql-execute-button")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            &format!("{{ const t = (() => {{ {response_text} }})(); return t.includes('{workspace}'); }}"),
            "the query result",
        )
        .await;

    // A subscription, over /graphql/ws.
    let subscription = format!(
        "subscription {{ executionEvents(executionId: \"{execution}\") {{ __typename ... on StatusEvent {{ status }} }} }}"
    );
    browser
        .eval(&format!(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({}); return true",
            json!(subscription)
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.client.find(Locator::Css(".graphiql-execute-button")).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            &format!("{{ const t = (() => {{ {response_text} }})(); return t.includes('COMPLETED'); }}"),
            "the subscription's final status",
        )
        .await;
    browser.assert_only_from(&app.url("")).await;
    browser.client.close().await.unwrap();
}
