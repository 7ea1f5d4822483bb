//! The event pipeline on its own: a subscriber that falls far behind the
//! live channel still gets every message exactly once, from the store.

use std::{sync::Arc, time::Duration};

use claude_graphql::{
    db::{self, messages::NewMessage},
    events::{subscription::execution_events, Broker, Event, MessageEvent, StatusEvent},
};
use futures_util::{FutureExt, StreamExt};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_catches_up_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let conn = db::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
    let workspace = db::workspaces::create(&conn, "me", "w", "/tmp", false).await.unwrap();
    let (execution_id, session_id) = new_execution(&conn, workspace.id).await;

    let broker = Broker::default();
    let publisher = broker.open(execution_id);
    let mut stream = Box::pin(execution_events(conn.clone(), broker.clone(), broker.reader("local"), execution_id, 0));
    // First poll: the stream joins the channel and waits for live events.
    assert!(stream.next().now_or_never().is_none());

    // Far more than the channel holds, published while nobody reads.
    const TOTAL: i64 = 10_000;
    for chunk in (1..=TOTAL).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<NewMessage> =
            chunk.iter().map(|&seq| assistant_line(seq, format!("{{\"type\":\"assistant\",\"n\":{seq}}}"))).collect();
        let stored = db::messages::Batch { execution_id, session_id, messages: batch.into() };
        db::messages::store_batches(&conn, &[&stored]).await.unwrap();
        for m in stored.messages.iter() {
            publisher.publish(Event::Message(MessageEvent {
                execution_id,
                seq: Some(m.seq),
                type_name: m.type_name.clone(),
                subtype: None,
                payload: m.payload.clone(),
                renders: Default::default(),
            }));
        }
    }
    let finish = db::executions::Finish { status: db::executions::Status::Completed, ..Default::default() };
    db::executions::finish(&conn, execution_id, session_id, finish, None).await.unwrap();
    publisher.publish(Event::Status(StatusEvent {
        execution_id,
        status: db::executions::Status::Completed,
        error: None,
        after_seq: 0,
        renders: Default::default(),
    }));
    drop(publisher);

    let events: Vec<Arc<Event>> =
        tokio::time::timeout(std::time::Duration::from_secs(30), stream.collect()).await.unwrap();
    let seqs: Vec<i64> = events
        .iter()
        .filter_map(|e| match &**e {
            Event::Message(m) => m.seq,
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>(), "every message once, in order");
    assert!(matches!(&**events.last().unwrap(), Event::Status(s) if s.status == db::executions::Status::Completed));
}

/// The store writer commits the lines of many runs together, each caller
/// hearing back once its lines are durable; a batch the store refuses
/// fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lines_are_committed_together_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let conn = db::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
    let workspace = db::workspaces::create(&conn, "me", "w", "/tmp", false).await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..20 {
        runs.push(new_execution(&conn, workspace.id).await);
    }
    let line = |seq: i64| assistant_line(seq, format!("{{\"n\":{seq}}}"));
    let writer = db::writer::StoreWriter::new(conn.clone());
    // Every run writes 10 batches of 30 lines at once; run 0 also repeats
    // its first batch, which the store refuses (seq is unique).
    let mut writes = Vec::new();
    for (i, &(execution_id, session_id)) in runs.iter().enumerate() {
        let writer = writer.clone();
        writes.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for b in 0..10 {
                let batch: Vec<_> = (b * 30 + 1..=b * 30 + 30).map(line).collect();
                results.push(writer.store(execution_id, session_id, batch).await.is_ok());
            }
            if i == 0 {
                results
                    .push(writer.store(execution_id, session_id, (1..=30).map(line).collect::<Vec<_>>()).await.is_ok());
            }
            results
        }));
    }
    for (i, write) in writes.into_iter().enumerate() {
        let results = write.await.unwrap();
        let expected: Vec<bool> = (0..10).map(|_| true).chain((i == 0).then_some(false)).collect();
        assert_eq!(results, expected, "run {i}");
    }
    for &(execution_id, _) in &runs {
        let stored = db::messages::after(&conn, execution_id, 0, 1000).await.unwrap();
        assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=300).collect::<Vec<_>>());
        let execution = db::executions::find(&conn, execution_id).await.unwrap().unwrap();
        assert_eq!(execution.message_count, 300);
    }
}

/// A subscriber that falls behind a live run catches up from the run's
/// recent history in memory: the very events the others got (so their
/// rendered texts are shared), without reading the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_of_a_live_run_catches_up_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let conn = db::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
    let execution_id = Uuid::now_v7();
    let broker = Broker::default();
    let publisher = broker.open(execution_id);
    let mut stream = Box::pin(execution_events(conn.clone(), broker.clone(), broker.reader("local"), execution_id, 0));
    assert!(stream.next().now_or_never().is_none());
    // More than the channel holds (1024) but within the history (2048),
    // published while nobody reads, and not in the store at all: only the
    // history can have them.
    const TOTAL: i64 = 2000;
    let mut published = Vec::new();
    for seq in 1..=TOTAL {
        publisher.publish(Event::Message(MessageEvent {
            execution_id,
            seq: Some(seq),
            type_name: "assistant".into(),
            subtype: None,
            payload: Arc::from(format!("{{\"n\":{seq}}}").as_str()),
            renders: Default::default(),
        }));
        published.push(seq);
    }
    let mut seen = Vec::new();
    while seen.len() < TOTAL as usize {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap().unwrap();
        if let Event::Message(m) = &*event {
            seen.push(m.seq.unwrap());
        }
    }
    assert_eq!(seen, published, "every message once, in order, from memory");
}

/// A new execution (in a new session) of `workspace`; returns its id and
/// its session's.
pub async fn new_execution(conn: &sea_orm::DatabaseConnection, workspace: Uuid) -> (Uuid, Uuid) {
    let execution_id = Uuid::now_v7();
    let session = db::sessions::create(conn, uuid::Uuid::now_v7(), workspace, execution_id, "a prompt", None, None)
        .await
        .unwrap();
    add_execution(conn, workspace, session.id, execution_id).await;
    (execution_id, session.id)
}

/// Line `seq` of a run that is its session's first, as the recorder
/// numbers it.
fn assistant_line(seq: i64, payload: String) -> NewMessage {
    NewMessage {
        seq,
        session_seq: seq,
        type_name: "assistant".into(),
        subtype: None,
        uuid: None,
        payload: payload.into(),
    }
}

/// Another execution of `session`.
async fn add_execution(conn: &sea_orm::DatabaseConnection, workspace: Uuid, session: Uuid, id: Uuid) {
    let new = db::executions::NewExecution {
        id,
        session_id: session,
        workspace_id: workspace,
        prompt: "p".into(),
        content: None,
        options: serde_json::json!({}),
        metadata: None,
        resumed_from: None,
        replica_id: Some("test".into()),
    };
    db::executions::create(conn, new).await.unwrap();
}

crate::on_every_db!(one_group_commit_keeps_every_count);

/// Two runs of one session and a run of another, stored in one group
/// commit: every line is there, each execution counts its own, the shared
/// session the higher of its two, and the sessions' activity moved.
async fn one_group_commit_keeps_every_count(app: crate::helpers::TestApp) {
    let conn = db::connect(&app.database_url).await.unwrap();
    let workspace = db::workspaces::create(&conn, "me", "w", "/tmp", false).await.unwrap();
    let (first, session) = new_execution(&conn, workspace.id).await;
    let (other, other_session) = new_execution(&conn, workspace.id).await;
    let second = Uuid::now_v7();
    add_execution(&conn, workspace.id, session, second).await;
    let before = db::sessions::find(&conn, session).await.unwrap().unwrap().last_activity_at;
    let lines = |seqs: std::ops::RangeInclusive<i64>, session_base: i64| -> Arc<[NewMessage]> {
        seqs.map(|seq| NewMessage {
            seq,
            session_seq: session_base + seq,
            type_name: "assistant".into(),
            subtype: (seq % 2 == 0).then(|| "even".into()),
            uuid: Some(format!("u{seq}")),
            payload: format!("{{\"type\":\"assistant\",\"n\":{seq},\"text\":\"é \\\" \\\\\"}}").into(),
        })
        .collect()
    };
    let batches = [
        db::messages::Batch { execution_id: first, session_id: session, messages: lines(1..=700, 0) },
        db::messages::Batch { execution_id: second, session_id: session, messages: lines(1..=3, 700) },
        db::messages::Batch { execution_id: other, session_id: other_session, messages: lines(1..=2, 0) },
    ];
    db::messages::store_batches(&conn, &batches.iter().collect::<Vec<_>>()).await.unwrap();

    let count = |id| {
        let conn = conn.clone();
        async move { db::executions::find(&conn, id).await.unwrap().unwrap().message_count }
    };
    assert_eq!((count(first).await, count(second).await, count(other).await), (700, 3, 2));
    let shared = db::sessions::find(&conn, session).await.unwrap().unwrap();
    assert_eq!(shared.message_count, 703);
    assert!(shared.last_activity_at >= before);
    assert_eq!(db::sessions::find(&conn, other_session).await.unwrap().unwrap().message_count, 2);
    let stored = db::messages::after(&conn, first, 0, 1000).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=700).collect::<Vec<_>>());
    let line = &stored[1];
    assert_eq!((line.session_seq, line.subtype.as_deref(), line.uuid.as_deref()), (2, Some("even"), Some("u2")));
    assert_eq!(&*line.payload, "{\"type\":\"assistant\",\"n\":2,\"text\":\"é \\\" \\\\\"}");
    let second_lines = db::messages::after(&conn, second, 0, 10).await.unwrap();
    assert_eq!(second_lines.iter().map(|m| m.session_seq).collect::<Vec<_>>(), [701, 702, 703]);
}

/// The server checkpoints SQLite's log beside the writer (the commits no
/// longer do): while it runs the lines reach the database file, and when it
/// stops the log is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_beside_the_writer() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.db");
    let conn = db::connect(&format!("sqlite://{}?mode=rwc", file.display())).await.unwrap();
    let workspace = db::workspaces::create(&conn, "me", "w", "/tmp", false).await.unwrap();
    let (execution_id, session_id) = new_execution(&conn, workspace.id).await;
    let line = |seq: i64| assistant_line(seq, format!("{{\"n\":{seq},\"pad\":\"{}\"}}", "x".repeat(500)));
    let size = |suffix: &str| {
        let mut name = file.clone().into_os_string();
        name.push(suffix);
        std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
    };
    // The commits do not checkpoint: the lines stay in the log.
    let row = conn
        .query_one(sea_orm::Statement::from_string(conn.get_database_backend(), "PRAGMA wal_autocheckpoint"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0, "commits do not checkpoint");
    let store = |from: i64| {
        let conn = conn.clone();
        async move {
            for b in 0..10 {
                let first = from + b * 100;
                let messages: Vec<_> = (first..first + 100).map(line).collect();
                let batch = db::messages::Batch { execution_id, session_id, messages: messages.into() };
                db::messages::store_batches(&conn, &[&batch]).await.unwrap();
            }
        }
    };
    store(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(size("") < 500_000, "nothing checkpointed yet: {} bytes", size(""));

    let checkpointer = db::checkpointer::Checkpointer::start(&conn, Duration::from_millis(20)).unwrap();
    store(1001).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(size("") > 1_000_000, "the lines reached the database file: {} bytes", size(""));
    checkpointer.stop().await;
    assert_eq!(size("-wal"), 0, "the log is emptied at the end");
}
