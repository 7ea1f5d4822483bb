//! Batched loads for nested fields (async-graphql's DataLoader): a page of
//! sessions that each ask for their workspace and their executions costs
//! one query per field, not one per session. Every load is scoped to the
//! viewer, like every other lookup.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{dataloader::DataLoader, Context};
use entity::{execution, session, workspace};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    db::{self, batch::Page, DbError},
    error::AppError,
};

/// The loaders of one request (or one WebSocket connection).
pub struct Loaders {
    pub workspaces: DataLoader<ById<workspace::Model>>,
    pub sessions: DataLoader<ById<session::Model>>,
    pub executions: DataLoader<ById<execution::Model>>,
    pub session_pages: DataLoader<Pages<session::Model>>,
    pub execution_pages: DataLoader<Pages<execution::Model>>,
}

impl Loaders {
    pub fn new(db: DatabaseConnection, owner: &str) -> Self {
        Self {
            workspaces: DataLoader::new(ById::new(&db, owner), tokio::spawn),
            sessions: DataLoader::new(ById::new(&db, owner), tokio::spawn),
            executions: DataLoader::new(ById::new(&db, owner), tokio::spawn),
            session_pages: DataLoader::new(Pages::new(&db), tokio::spawn),
            execution_pages: DataLoader::new(Pages::new(&db), tokio::spawn),
        }
    }
}

/// The request's loaders.
pub fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>()
}

/// What a failed batch tells each of its loads.
pub type LoadError = Arc<DbError>;

/// Turns a batch failure into the error a resolver returns.
pub fn load_error(e: LoadError) -> AppError {
    AppError::Internal(e.to_string())
}

/// Rows of one kind by id, the viewer's only.
pub struct ById<M> {
    db: DatabaseConnection,
    owner: String,
    _row: std::marker::PhantomData<fn() -> M>,
}

impl<M> ById<M> {
    fn new(db: &DatabaseConnection, owner: &str) -> Self {
        Self { db: db.clone(), owner: owner.to_owned(), _row: std::marker::PhantomData }
    }
}

macro_rules! by_id {
    ($model:ty, $load:path) => {
        impl async_graphql::dataloader::Loader<Uuid> for ById<$model> {
            type Value = $model;
            type Error = LoadError;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, $model>, LoadError> {
                let rows = $load(&self.db, &self.owner, keys).await.map_err(Arc::new)?;
                Ok(rows.into_iter().map(|row| (row.id, row)).collect())
            }
        }
    };
}

by_id!(workspace::Model, db::batch::workspaces);
by_id!(session::Model, db::batch::sessions);
by_id!(execution::Model, db::batch::executions);

/// One page of children per parent id (access to the parent was checked
/// when it was loaded).
pub struct Pages<M> {
    db: DatabaseConnection,
    _row: std::marker::PhantomData<fn() -> M>,
}

impl<M> Pages<M> {
    fn new(db: &DatabaseConnection) -> Self {
        Self { db: db.clone(), _row: std::marker::PhantomData }
    }
}

macro_rules! pages {
    ($model:ty, $load:path) => {
        impl async_graphql::dataloader::Loader<(Uuid, Page)> for Pages<$model> {
            type Value = Vec<$model>;
            type Error = LoadError;

            async fn load(&self, keys: &[(Uuid, Page)]) -> Result<HashMap<(Uuid, Page), Vec<$model>>, LoadError> {
                // One query per distinct page shape (usually one).
                let mut shapes: HashMap<Page, Vec<Uuid>> = HashMap::new();
                for (parent, page) in keys {
                    shapes.entry(*page).or_default().push(*parent);
                }
                let mut found = HashMap::new();
                for (page, parents) in shapes {
                    let mut groups = $load(&self.db, &parents, page).await.map_err(Arc::new)?;
                    for parent in parents {
                        found.insert((parent, page), groups.remove(&parent).unwrap_or_default());
                    }
                }
                Ok(found)
            }
        }
    };
}

pages!(session::Model, db::batch::session_pages);
pages!(execution::Model, db::batch::execution_pages);
