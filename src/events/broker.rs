//! Per-execution fan-out of events to live subscribers.
//!
//! A channel exists from the moment an execution is created until its
//! terminal event has been sent; subscribers join it *before* they read the
//! store, so nothing published in between is missed (they drop duplicates
//! by `seq`). The channel is bounded: a subscriber that falls behind gets
//! `Lagged` and catches up, so it never slows the run or the other
//! subscribers: from the execution's recent history, kept here in memory
//! (the very events the others got, so their rendered texts are shared
//! too), or from the store for what is older.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;
use uuid::Uuid;

use super::Event;

/// Events buffered per execution for subscribers that are a little behind;
/// it also bounds the memory a live execution holds (older events are in
/// the store).
const CHANNEL_CAPACITY: usize = 1024;

/// Recent messages kept per live execution, at most this many ...
/// (Twice the channel: a subscriber that lagged behind the channel is
/// usually still within it. Each kept message holds its line, its event
/// and its rendered text, about three times the line; at 8192 a burst of
/// 50 runs took 490 MB, and first touching that memory was 10-18% of the
/// server's profile.)
const HISTORY_EVENTS: usize = 2 * CHANNEL_CAPACITY;
/// ... and this many bytes of lines.
const HISTORY_BYTES: usize = 2 * 1024 * 1024;

/// A live execution: its channel and its recent messages.
struct Live {
    tx: broadcast::Sender<Arc<Event>>,
    history: Arc<Mutex<History>>,
}

type Channels = Arc<Mutex<HashMap<Uuid, Live>>>;

/// The last stored messages of an execution, in order.
#[derive(Default)]
struct History {
    events: std::collections::VecDeque<(i64, Arc<Event>)>,
    bytes: usize,
    /// The last seq stored before this channel opened (a resumed run's):
    /// nothing up to it was ever here.
    floor: i64,
    /// The run's latest status event, for subscribers that join later.
    status: Option<Arc<Event>>,
    /// Its progress of 1.0, published when `claude` has exited (at the end,
    /// or before the run is parked): the terminal status is stored after
    /// it, and a subscriber that joins in between would miss it.
    final_progress: Option<Arc<Event>>,
}

impl History {
    fn push(&mut self, seq: i64, event: Arc<Event>, size: usize) {
        self.events.push_back((seq, event));
        self.bytes += size;
        while self.events.len() > HISTORY_EVENTS || (self.bytes > HISTORY_BYTES && self.events.len() > 1) {
            if let Some((_, old)) = self.events.pop_front() {
                self.bytes -= message_size(&old);
            }
        }
    }

    /// The messages after `after` (at most `max`), if nothing after it was
    /// let go yet; an empty list when none came after it.
    fn after(&self, after: i64, max: usize) -> Option<Vec<(i64, Arc<Event>)>> {
        if after < self.floor {
            return None;
        }
        match self.events.front() {
            Some((first, _)) if *first > after + 1 => None,
            _ => Some(self.events.iter().filter(|(seq, _)| *seq > after).take(max).cloned().collect()),
        }
    }
}

fn message_size(event: &Event) -> usize {
    match event {
        Event::Message(m) => m.payload.len(),
        _ => 0,
    }
}

/// Every live execution's progress, status and permission events (no
/// messages), for dashboards. Lagging behind only costs a dashboard a
/// store read.
#[derive(Clone)]
pub struct Activity(broadcast::Sender<Arc<Event>>);

impl Default for Activity {
    fn default() -> Self {
        Activity(broadcast::channel(CHANNEL_CAPACITY * 4).0)
    }
}

impl Activity {
    fn send(&self, event: &Arc<Event>) {
        if !matches!(**event, Event::Message(_)) {
            let _ = self.0.send(event.clone());
        }
    }
}

/// The registry of live executions' channels.
#[derive(Clone, Default)]
pub struct Broker {
    channels: Channels,
    /// Signals from other replicas about executions they run.
    wakeups: super::replicas::Wakeups,
    /// The store-read budget of subscriptions.
    reads: super::reads::StoreReads,
    /// Whether runs' messages can be stored.
    health: super::StoreHealth,
    activity: Activity,
}

impl Broker {
    /// A broker whose subscriptions read the store at most `total` at a
    /// time, and `per_user` at a time for one user.
    pub fn new(reads_total: usize, reads_per_user: usize) -> Self {
        Self { reads: super::reads::StoreReads::new(reads_total, reads_per_user), ..Default::default() }
    }

    /// Whether runs' messages can be stored.
    pub fn store_health(&self) -> &super::StoreHealth {
        &self.health
    }

    /// The store reader of `user`'s subscriptions.
    pub fn reader(&self, user: &str) -> super::reads::StoreReader {
        self.reads.reader(user)
    }

    /// Opens the channel of a new execution. The returned publisher is the
    /// only sender; dropping it closes the channel.
    pub fn open(&self, execution_id: Uuid) -> Publisher {
        self.open_after(execution_id, 0)
    }

    /// Opens the channel of an execution whose messages up to `stored` are
    /// in the store already (a run resumed after it was parked).
    pub fn open_after(&self, execution_id: Uuid, stored: i64) -> Publisher {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let history = Arc::new(Mutex::new(History { floor: stored, ..History::default() }));
        self.lock().insert(execution_id, Live { tx: tx.clone(), history: history.clone() });
        Publisher { execution_id, tx, history, channels: self.channels.clone(), activity: self.activity.clone() }
    }

    /// The latest status event of an execution live on this server.
    pub fn current_status(&self, execution_id: Uuid) -> Option<Arc<Event>> {
        let history = self.lock().get(&execution_id)?.history.clone();
        let status = history.lock().unwrap_or_else(|e| e.into_inner()).status.clone();
        status
    }

    /// The final progress of a run live here whose end is being recorded.
    pub fn final_progress(&self, execution_id: Uuid) -> Option<Arc<Event>> {
        let history = self.lock().get(&execution_id)?.history.clone();
        let progress = history.lock().unwrap_or_else(|e| e.into_inner()).final_progress.clone();
        progress
    }

    /// Joins an execution's live events, if it is live on this server.
    pub fn subscribe(&self, execution_id: Uuid) -> Option<broadcast::Receiver<Arc<Event>>> {
        self.lock().get(&execution_id).map(|live| live.tx.subscribe())
    }

    /// The stored messages of a live execution after `after` (at most
    /// `max`, with their seqs) from memory; None when they are not all
    /// there (the store has them). Anything newer is not yet published: a
    /// subscriber gets it live.
    pub fn recent(&self, execution_id: Uuid, after: i64, max: usize) -> Option<Vec<(i64, Arc<Event>)>> {
        let history = self.lock().get(&execution_id)?.history.clone();
        let history = history.lock().unwrap_or_else(|e| e.into_inner());
        history.after(after, max)
    }

    /// Sends an event to an execution's live subscribers from outside its
    /// recorder (an answered permission request); live only, no `seq`.
    pub fn publish_to(&self, execution_id: Uuid, event: Event) {
        let event = Arc::new(event);
        self.activity.send(&event);
        if let Some(live) = self.lock().get(&execution_id) {
            let _ = live.tx.send(event);
        }
    }

    /// Joins the progress, status and permission events of every execution
    /// live on this server.
    pub fn activity(&self) -> broadcast::Receiver<Arc<Event>> {
        self.activity.0.subscribe()
    }

    pub fn wakeups(&self) -> &super::replicas::Wakeups {
        &self.wakeups
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Live>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of one execution's channel.
pub struct Publisher {
    execution_id: Uuid,
    tx: broadcast::Sender<Arc<Event>>,
    history: Arc<Mutex<History>>,
    channels: Channels,
    activity: Activity,
}

impl Publisher {
    /// Sends to whoever listens now; nobody listening is fine. A stored
    /// message joins the history first, so a subscriber that finds it
    /// missing there gets it from the channel.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        match &*event {
            Event::Message(m) => {
                if let Some(seq) = m.seq {
                    let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
                    history.push(seq, event.clone(), m.payload.len());
                }
            }
            Event::Status(_) => self.history.lock().unwrap_or_else(|e| e.into_inner()).status = Some(event.clone()),
            Event::Progress(p) if p.progress >= 1.0 => {
                self.history.lock().unwrap_or_else(|e| e.into_inner()).final_progress = Some(event.clone())
            }
            _ => {}
        }
        self.activity.send(&event);
        let _ = self.tx.send(event);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.get(&self.execution_id).is_some_and(|live| live.tx.same_channel(&self.tx)) {
            channels.remove(&self.execution_id);
        }
    }
}
