//! Store reads of subscriptions: bounded, and never held by a subscriber
//! that is not being polled.
//!
//! A subscription is a stream; its client's connection polls it only when
//! the socket can take more. A store query inside an unpolled stream would
//! keep its pooled connection checked out for as long as the client does
//! not read, and a few such subscriptions would starve every other request
//! of the pool. So each read runs on a task of its own, which finishes (and
//! returns the connection) whether or not the stream is polled; waiting for
//! a turn happens before a connection is taken. At most `total` reads run
//! at once on the server (leaving the rest of the pool to everything else),
//! and at most `per_user` for one user (so one user cannot take them all).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use tokio::sync::Semaphore;
use tokio_util::task::AbortOnDropHandle;

/// Above this many users with a semaphore, idle ones are dropped.
const TRACKED_USERS: usize = 1024;

/// The read budget of a server; cheap to clone.
#[derive(Clone)]
pub struct StoreReads {
    total: Arc<Semaphore>,
    per_user: usize,
    users: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Default for StoreReads {
    fn default() -> Self {
        Self::new(4, 2)
    }
}

impl StoreReads {
    pub fn new(total: usize, per_user: usize) -> Self {
        Self { total: Arc::new(Semaphore::new(total.max(1))), per_user: per_user.max(1), users: Arc::default() }
    }

    /// The reader for one user's subscriptions.
    pub fn reader(&self, user: &str) -> StoreReader {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() > TRACKED_USERS {
            // Nobody else holds these: no subscription of theirs is open.
            users.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        let user = users.entry(user.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_user))).clone();
        StoreReader { total: self.total.clone(), user }
    }
}

/// Runs one user's store reads; cheap to clone.
#[derive(Clone)]
pub struct StoreReader {
    total: Arc<Semaphore>,
    user: Arc<Semaphore>,
}

impl StoreReader {
    /// Runs the future `read` makes to completion on a task of its own, in
    /// turn; None if it panicked. Dropping the returned future (the
    /// subscription ended) aborts the read.
    ///
    /// The read's future (a query, a few KiB) exists only while it runs:
    /// it is made once the turn has come, and boxed, so neither a task
    /// waiting for its turn nor the stream awaiting the task (spawned at
    /// this call, not at the first poll) holds its state. A thousand
    /// subscribers that join at once queue a thousand small tasks.
    pub fn run<T, F, Fut>(&self, read: F) -> impl Future<Output = Option<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (total, user) = (self.total.clone(), self.user.clone());
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            // The user's turn first, so one user's backlog never holds
            // server-wide permits while it waits.
            let _user = user.acquire_owned().await;
            let _total = total.acquire_owned().await;
            Box::pin(read()).await
        }));
        async move { task.await.ok() }
    }
}
