//! Until when runs of the Claude account wait (see `account_hold`). Every
//! run of this server uses the one account the CLI is logged in with.

use chrono::{DateTime, Utc};
use entity::account_hold;
use sea_orm::{prelude::*, ActiveValue::Set, TransactionTrait};

use super::DbResult;

/// The account every run uses.
const ACCOUNT: &str = "claude";

/// Holds the account's runs until `until` (or later, if it is held longer
/// already).
pub async fn hold(db: &DatabaseConnection, until: DateTime<Utc>, reason: &str) -> DbResult<()> {
    let txn = db.begin().await?;
    super::lock_for(&txn, "account-hold").await?;
    let row = account_hold::ActiveModel {
        account: Set(ACCOUNT.into()),
        until: Set(until),
        reason: Set(reason.chars().take(1000).collect()),
    };
    match account_hold::Entity::find_by_id(ACCOUNT).one(&txn).await? {
        None => {
            row.insert(&txn).await?;
        }
        Some(held) if held.until < until => {
            row.update(&txn).await?;
        }
        Some(_) => {}
    }
    Ok(txn.commit().await?)
}

/// Until when the account is held, if it is after `now`.
pub async fn held_until(db: &impl ConnectionTrait, now: DateTime<Utc>) -> DbResult<Option<DateTime<Utc>>> {
    let held = account_hold::Entity::find_by_id(ACCOUNT).one(db).await?;
    Ok(held.map(|h| h.until).filter(|until| *until > now))
}
