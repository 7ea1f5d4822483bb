//! The live view and GraphiQL in headless Chromium, with every host but
//! this machine unreachable. Skipped (saying so) without chromium and
//! chromedriver; `.ci/run` installs them.

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

struct Browser {
    client: Client,
    _driver: tokio::process::Child,
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
    let driver = tokio::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
            return Some(Browser { client, _driver: driver, _profile: profile });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
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
        panic!("timed out waiting for {what}");
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
    browser.client.find(Locator::Css("#prompt")).await.unwrap().send_keys(prompt).await.unwrap();
    browser.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_streams_and_survives_a_dropped_connection() {
    let Some(browser) = browser().await else { return };
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
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
