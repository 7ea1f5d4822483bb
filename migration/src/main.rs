//! `cargo run -p migration -- up|down|status` against `DATABASE_URL`. The
//! server applies pending migrations by itself on startup; this is for
//! operators who want to do it (or undo it) by hand.

use migration::Migrator;
use sea_orm_migration::{sea_orm::Database, MigratorTrait};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://claude-graphql.db?mode=rwc".into());
    let db = Database::connect(&url).await?;
    match std::env::args().nth(1).as_deref().unwrap_or("status") {
        "up" => Migrator::up(&db, None).await?,
        "down" => Migrator::down(&db, Some(1)).await?,
        "status" => Migrator::status(&db).await?,
        other => return Err(format!("unknown command {other}: use up, down or status").into()),
    }
    Ok(())
}
