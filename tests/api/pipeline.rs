//! The event pipeline on its own: a subscriber that falls far behind the
//! live channel still gets every message exactly once, from the store.

use std::sync::Arc;

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
    let execution_id = Uuid::now_v7();
    let session = db::sessions::create(&conn, workspace.id, execution_id, "a prompt").await.unwrap();
    db::executions::create(
        &conn,
        db::executions::NewExecution {
            id: execution_id,
            session_id: session.id,
            workspace_id: workspace.id,
            prompt: "p".into(),
            options: serde_json::json!({}),
            metadata: None,
            resumed_from: None,
            replica_id: "test".into(),
        },
    )
    .await
    .unwrap();

    let broker = Broker::default();
    let publisher = broker.open(execution_id);
    let mut stream = Box::pin(execution_events(conn.clone(), broker.clone(), broker.reader("local"), execution_id, 0));
    // First poll: the stream joins the channel and waits for live events.
    assert!(stream.next().now_or_never().is_none());

    // Far more than the channel holds, published while nobody reads.
    const TOTAL: i64 = 10_000;
    for chunk in (1..=TOTAL).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|&seq| NewMessage {
                seq,
                session_seq: seq,
                type_name: "assistant".into(),
                subtype: None,
                uuid: None,
                payload: format!("{{\"type\":\"assistant\",\"n\":{seq}}}"),
            })
            .collect();
        db::messages::store_batch(&conn, execution_id, session.id, &batch).await.unwrap();
        for m in &batch {
            publisher.publish(Event::Message(MessageEvent {
                execution_id,
                seq: Some(m.seq),
                type_name: m.type_name.clone(),
                subtype: None,
                payload: Arc::from(m.payload.as_str()),
                renders: Default::default(),
            }));
        }
    }
    let finish = db::executions::Finish { status: db::executions::COMPLETED, ..Default::default() };
    db::executions::finish(&conn, execution_id, session.id, finish).await.unwrap();
    publisher.publish(Event::Status(StatusEvent {
        execution_id,
        status: "COMPLETED".into(),
        error: None,
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
    assert!(matches!(&**events.last().unwrap(), Event::Status(s) if s.status == "COMPLETED"));
}
