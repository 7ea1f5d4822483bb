//! Lines are stored in blocks (the lines of a run committed together share
//! a row) and read back one by one: every page of `sessionLogs` and every
//! replay starts and ends on the right line, whatever blocks it cuts
//! through; lines stored one a row before blocks existed read the same;
//! a block that does not add up is an error, never a wrong page; lines
//! that do not follow the stored ones are refused.

use std::sync::Arc;

use claude_graphql::db::{self, messages::NewMessage};
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    helpers::{fresh_database, seqs, spawn_on_database, Db, TestApp},
    pipeline::new_execution,
};

crate::on_every_db!(pages_and_replays_cut_through_blocks);

/// The lines of two runs of one session, stored as blocks of many sizes:
/// one line, a few, and more than a block holds (split). Some lines are awkward: non-ASCII text,
/// JSON with a newline inside, a stderr line held as a JSON string.
async fn pages_and_replays_cut_through_blocks(app: TestApp) {
    let conn = db::connect(&app.database_url).await.unwrap();
    let workspace = owned_workspace(&conn).await;
    let (first, session) = new_execution(&conn, workspace).await;
    let second = Uuid::now_v7();
    add_execution(&conn, workspace, session, second).await;

    // The first run's lines, in batches of 1, 3, 1, 605 and 590 lines
    // (the last two more than a block holds).
    let in_first: Vec<NewMessage> = (1..=1200).map(|seq| line(seq, seq)).collect();
    for pair in [0, 1, 4, 5, 610, 1200].windows(2) {
        store(&conn, first, session, &in_first[pair[0]..pair[1]]).await;
    }
    // The second run's, in one batch.
    let in_second: Vec<NewMessage> = (1..=100).map(|seq| line(seq, 1200 + seq)).collect();
    store(&conn, second, session, &in_second).await;
    finish(&conn, first, session).await;
    finish(&conn, second, session).await;
    let expected: Vec<&NewMessage> = in_first.iter().chain(&in_second).collect();

    // Pages of sessionLogs, at many starts and sizes.
    let pages = [(0, 1), (0, 300), (1, 3), (3, 2), (4, 1), (5, 300), (500, 300), (604, 10), (1100, 300)];
    for (after, limit) in pages.into_iter().chain([(1195, 10), (1245, 10), (1290, 10), (1299, 5), (1300, 5)]) {
        let page = session_logs(&app, session, after, limit).await;
        let want: Vec<&&NewMessage> = expected.iter().filter(|m| m.session_seq > after).take(limit as usize).collect();
        assert_eq!(page.len(), want.len(), "after {after}, limit {limit}");
        for (got, want) in page.iter().zip(want) {
            assert_eq!(got["seq"], want.session_seq);
            assert_eq!(got["executionSeq"], want.seq);
            assert_eq!(got["type"], &*want.type_name);
            assert_eq!(got["subtype"], json!(want.subtype));
            assert_eq!(got["uuid"], json!(want.uuid));
            assert_eq!(got["payload"], serde_json::from_str::<Value>(&want.payload).unwrap(), "line {}", want.seq);
        }
    }

    // Replays over graphql-ws from several points; the store reads them a
    // page at a time.
    for after in [0, 1, 5, 609, 1199] {
        let events = app.events(&first.to_string(), after).await.unwrap();
        assert_eq!(seqs(&events), ((after + 1)..=1200).collect::<Vec<_>>(), "replay after {after}");
    }
    let events = app.events(&second.to_string(), 0).await.unwrap();
    assert_eq!(seqs(&events), (1..=100).collect::<Vec<_>>());

    // And exactly as written, at the store.
    for (execution, lines) in [(first, &in_first), (second, &in_second)] {
        let stored = db::messages::after(&conn, execution, 0, 2000).await.unwrap();
        let texts: Vec<&str> = stored.iter().map(|m| &*m.payload).collect();
        assert_eq!(texts, lines.iter().map(|m| &*m.payload).collect::<Vec<_>>());
    }
}

crate::on_every_db!(a_block_that_does_not_add_up_is_an_error);

/// A block whose text is shorter than its headers say, or whose headers
/// are not JSON, fails the read that meets it; the pages before it still
/// read.
async fn a_block_that_does_not_add_up_is_an_error(app: TestApp) {
    let conn = db::connect(&app.database_url).await.unwrap();
    let workspace = owned_workspace(&conn).await;
    let (execution, session) = new_execution(&conn, workspace).await;
    let lines: Vec<NewMessage> = (1..=20).map(|seq| line(seq, seq)).collect();
    store(&conn, execution, session, &lines[..10]).await;
    store(&conn, execution, session, &lines[10..]).await;
    let damage = |set: &str| {
        let sql = format!("UPDATE message_block SET {set} WHERE first_seq = 11");
        let conn = conn.clone();
        async move { conn.execute_unprepared(&sql).await.unwrap() }
    };

    damage("payload = substr(payload, 1, 40)").await;
    assert_eq!(session_logs(&app, session, 0, 10).await.len(), 10);
    let response = app
        .gql("query($s: ID!) { sessionLogs(sessionId: $s, limit: 20) { seq } }", json!({ "s": session.to_string() }))
        .await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "INTERNAL_ERROR", "{response}");
    assert!(db::messages::after(&conn, execution, 5, 10).await.is_err());

    damage("headers = 'not json'").await;
    assert!(db::messages::session_logs(&conn, session, 12, 3).await.is_err());
    damage("headers = '[]'").await;
    assert!(db::messages::session_logs(&conn, session, 12, 3).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_stored_one_a_row_read_the_same_sqlite() {
    lines_stored_one_a_row_read_the_same(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_stored_one_a_row_read_the_same_postgres() {
    lines_stored_one_a_row_read_the_same(Db::Postgres).await;
}

/// A database from before blocks, with lines stored one a row, is
/// migrated: the server gives every line back as it was, in sessionLogs
/// (a page reads on past a gap in the session's numbering) and in a
/// replay, and stores new ones beside them.
async fn lines_stored_one_a_row_read_the_same(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(db, &dir).await else { return };
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    migration::Migrator::up(&conn, Some(19)).await.unwrap();
    let workspace = owned_workspace(&conn).await;
    let (execution, session) = new_execution(&conn, workspace).await;
    // The session's numbering skips ten after line 15.
    let lines: Vec<NewMessage> = (1..=30).map(|seq| line(seq, if seq <= 15 { seq } else { seq + 10 })).collect();
    for m in &lines {
        use sea_orm::sea_query::{Alias, Query};
        let columns =
            ["execution_id", "session_id", "seq", "session_seq", "type", "subtype", "uuid", "payload", "created_at"];
        let insert = Query::insert()
            .into_table(Alias::new("message"))
            .columns(columns.map(Alias::new))
            .values_panic([
                execution.into(),
                session.into(),
                m.seq.into(),
                m.session_seq.into(),
                m.type_name.to_string().into(),
                m.subtype.as_deref().map(str::to_owned).into(),
                m.uuid.clone().into(),
                m.payload.to_string().into(),
                chrono::Utc::now().into(),
            ])
            .to_owned();
        conn.execute(conn.get_database_backend().build(&insert)).await.unwrap();
    }
    // The counts the server kept beside them.
    for (table, count, id) in [("execution", 30, execution), ("session", 40, session)] {
        let update = sea_orm::sea_query::Query::update()
            .table(sea_orm::sea_query::Alias::new(table))
            .value(sea_orm::sea_query::Alias::new("message_count"), count)
            .and_where(sea_orm::sea_query::Expr::col(sea_orm::sea_query::Alias::new("id")).eq(id))
            .to_owned();
        conn.execute(conn.get_database_backend().build(&update)).await.unwrap();
    }
    finish(&conn, execution, session).await;
    conn.close().await.unwrap();

    let app = spawn_on_database(dir, url).await;
    let page = session_logs(&app, session, 0, 100).await;
    assert_eq!(page.len(), 30);
    for (got, want) in page.iter().zip(&lines) {
        assert_eq!(got["seq"], want.session_seq);
        assert_eq!(got["executionSeq"], want.seq);
        assert_eq!(got["type"], &*want.type_name);
        assert_eq!(got["subtype"], json!(want.subtype));
        assert_eq!(got["uuid"], json!(want.uuid));
        assert_eq!(got["payload"], serde_json::from_str::<Value>(&want.payload).unwrap());
    }
    let across: Vec<i64> =
        session_logs(&app, session, 13, 4).await.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(across, [14, 15, 26, 27]);
    assert_eq!(seqs(&app.events(&execution.to_string(), 7).await.unwrap()), (8..=30).collect::<Vec<_>>());
    let conn = db::connect(&app.database_url).await.unwrap();
    let stored = db::messages::after(&conn, execution, 0, 100).await.unwrap();
    assert_eq!(
        stored.iter().map(|m| &*m.payload).collect::<Vec<_>>(),
        lines.iter().map(|m| &*m.payload).collect::<Vec<_>>()
    );

    // A new run of the session continues its numbering, in a block.
    let next = Uuid::now_v7();
    add_execution(&conn, workspace, session, next).await;
    let more: Vec<NewMessage> = (1..=5).map(|seq| line(seq, 40 + seq)).collect();
    store(&conn, next, session, &more).await;
    let page = session_logs(&app, session, 38, 100).await;
    let numbers: Vec<(i64, i64)> =
        page.iter().map(|l| (l["seq"].as_i64().unwrap(), l["executionSeq"].as_i64().unwrap())).collect();
    assert_eq!(numbers, [(39, 29), (40, 30), (41, 1), (42, 2), (43, 3), (44, 4), (45, 5)]);
}

crate::on_every_db!(lines_that_do_not_follow_the_stored_ones_are_refused);

/// Blocks never overlap: lines stored again (a retry that was in fact
/// committed), lines from a stale count, lines that skip, and two batches
/// of one run that overlap in one group commit are all refused, and what
/// was stored reads as it was.
async fn lines_that_do_not_follow_the_stored_ones_are_refused(app: TestApp) {
    let conn = db::connect(&app.database_url).await.unwrap();
    let workspace = owned_workspace(&conn).await;
    let (execution, session) = new_execution(&conn, workspace).await;
    let lines: Vec<NewMessage> = (1..=20).map(|seq| line(seq, seq)).collect();
    store(&conn, execution, session, &lines[..10]).await;
    let batch = |range: std::ops::Range<usize>| db::messages::Batch {
        execution_id: execution,
        session_id: session,
        messages: Arc::from(&lines[range]),
    };
    for refused in [0..10, 4..12, 9..15, 11..15] {
        let result = db::messages::store_batches(&conn, &[&batch(refused.clone())]).await;
        assert!(result.is_err(), "lines {refused:?} after 1..=10 were stored");
    }
    let overlapping = db::messages::store_batches(&conn, &[&batch(10..15), &batch(12..20)]).await;
    assert!(overlapping.is_err(), "two overlapping batches in one commit were stored");
    // Another run of the session must go on from the session's count too.
    let other = Uuid::now_v7();
    add_execution(&conn, workspace, session, other).await;
    let stale: Vec<NewMessage> = (1..=3).map(|seq| line(seq, 5 + seq)).collect();
    let stale = db::messages::Batch { execution_id: other, session_id: session, messages: Arc::from(stale) };
    assert!(db::messages::store_batches(&conn, &[&stale]).await.is_err());

    let stored = db::messages::after(&conn, execution, 0, 100).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    let logs: Vec<i64> =
        db::messages::session_logs(&conn, session, 0, 100).await.unwrap().iter().map(|m| m.session_seq).collect();
    assert_eq!(logs, (1..=10).collect::<Vec<_>>());
    let execution_row = db::executions::find(&conn, execution).await.unwrap().unwrap();
    assert_eq!(execution_row.message_count, 10);
    // What does follow is stored, in one commit with the next batch.
    db::messages::store_batches(&conn, &[&batch(10..15), &batch(15..20)]).await.unwrap();
    let stored = db::messages::after(&conn, execution, 0, 100).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
}

/// Line `seq` of a run, `session_seq` in its session; every few lines an
/// awkward one.
fn line(seq: i64, session_seq: i64) -> NewMessage {
    let (type_name, payload) = match seq % 5 {
        0 => ("stderr", json!(format!("warning {seq}: ünïcødé ✓")).to_string()),
        1 => ("assistant", format!("{{\"type\":\"assistant\",\n\"n\":{seq}}}")),
        2 => ("user", format!("{{\"type\":\"user\",\"text\":\"é \\\" \\\\ \\n {seq}\"}}")),
        _ => ("system", format!("{{\"type\":\"system\",\"subtype\":\"status\",\"n\":{seq}}}")),
    };
    NewMessage {
        seq,
        session_seq,
        type_name: type_name.into(),
        subtype: (type_name == "system").then(|| "status".into()),
        uuid: (seq % 2 == 0).then(|| format!("u-{seq}")),
        payload: payload.into(),
    }
}

async fn store(conn: &DatabaseConnection, execution_id: Uuid, session_id: Uuid, lines: &[NewMessage]) {
    let batch = db::messages::Batch { execution_id, session_id, messages: Arc::from(lines) };
    db::messages::store_batches(conn, &[&batch]).await.unwrap();
}

/// A workspace of the user a server without auth serves.
async fn owned_workspace(conn: &DatabaseConnection) -> Uuid {
    let owner = claude_graphql::http::auth::LOCAL_USER;
    db::workspaces::create(conn, owner, "w", "/tmp", false).await.unwrap().id
}

async fn add_execution(conn: &DatabaseConnection, workspace: Uuid, session: Uuid, id: Uuid) {
    let new = db::executions::NewExecution {
        id,
        session_id: session,
        workspace_id: workspace,
        prompt: "p".into(),
        content: None,
        options: json!({}),
        metadata: None,
        resumed_from: None,
        replica_id: Some("test".into()),
    };
    db::executions::create(conn, new).await.unwrap();
}

async fn finish(conn: &DatabaseConnection, execution: Uuid, session: Uuid) {
    let finish = db::executions::Finish { status: db::executions::Status::Completed, ..Default::default() };
    db::executions::finish(conn, execution, session, finish, None).await.unwrap();
}

async fn session_logs(app: &TestApp, session: Uuid, after: i64, limit: i64) -> Vec<Value> {
    let data = app
        .ok(
            "query($s: ID!, $after: Int, $limit: Int!) { sessionLogs(sessionId: $s, afterSeq: $after, limit: $limit) \
             { seq executionSeq type subtype uuid payload } }",
            json!({ "s": session.to_string(), "after": after, "limit": limit }),
        )
        .await;
    data["sessionLogs"].as_array().unwrap().clone()
}
