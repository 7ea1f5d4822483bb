//! Benchmarks of claude-graphql: the real server (its own process, pinned
//! to core 0) driven over real sockets by this process (pinned to core 1),
//! each figure printed beside the same figure for the peer a user would
//! pick (a Node graphql-ws server running the same stand-in, `bench/peer`)
//! and for a bare WebSocket broadcast of pre-serialised frames, the ceiling.
//!
//!     cargo build --release && cargo run --release -p bench -- all
//!
//! One table row and one JSON line per measurement.

mod ceiling;
mod client;
mod proc;
mod scenarios;
mod server;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of claude-graphql (build the workspace with --release first)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// 1 execution, many subscribers; burst and paced (50 messages/s).
    Fanout {
        #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1000, 5000])]
        subscribers: Vec<usize>,
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// Many concurrent executions, one subscriber each.
    Runs {
        #[arg(long, value_delimiter = ',', default_values_t = [10, 50])]
        runs: Vec<usize>,
        /// Per run (enough that the ceiling's CPU time is measurable).
        #[arg(long, default_value_t = 5000)]
        messages: u64,
    },
    /// Open, idle subscriptions: memory per subscription, connect time, idle CPU.
    Idle {
        #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000, 20000])]
        subscriptions: Vec<usize>,
    },
    /// Messages stored per second (SQLite, and PostgreSQL with --postgres).
    Store {
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        /// A PostgreSQL database to measure too (it is migrated and written to).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// sessionLogs latency over a session with many stored messages.
    Logs {
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 2000)]
        queries: usize,
    },
    /// startExecution -> first event, minus the stand-in's own start-up.
    Start {
        #[arg(long, default_value_t = 30)]
        samples: usize,
    },
    /// A bounded soak: runs with faults, subscribers that drop and resume;
    /// checks every sequence and that resources return to the baseline.
    Soak {
        #[arg(long, default_value_t = 3)]
        minutes: u64,
        /// Soak PostgreSQL instead of SQLite.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Every scenario with its defaults (logs with 1M messages takes minutes).
    All,
    /// (internal) the ceiling server process.
    #[command(hide = true)]
    CeilingServer(ceiling::CeilingArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Scenario::CeilingServer(args) = cli.scenario {
        return ceiling::serve(args);
    }
    proc::pin_self(1);
    proc::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut report = scenarios::Report::default();
        match cli.scenario {
            Scenario::Fanout { subscribers, messages, size } => {
                scenarios::fanout(&mut report, &subscribers, messages, size).await?
            }
            Scenario::Runs { runs, messages } => scenarios::runs(&mut report, &runs, messages).await?,
            Scenario::Idle { subscriptions } => scenarios::idle(&mut report, &subscriptions).await?,
            Scenario::Store { messages, postgres } => {
                scenarios::store(&mut report, messages, postgres.as_deref()).await?
            }
            Scenario::Logs { messages, queries } => scenarios::logs(&mut report, messages, queries).await?,
            Scenario::Start { samples } => scenarios::start(&mut report, samples).await?,
            Scenario::Soak { minutes, postgres } => soak::soak(minutes, postgres.as_deref()).await?,
            Scenario::All => {
                scenarios::fanout(&mut report, &[1, 100, 1000, 5000], 1000, 200).await?;
                scenarios::runs(&mut report, &[10, 50], 5000).await?;
                scenarios::idle(&mut report, &[1000, 5000, 20000]).await?;
                let postgres = std::env::var("BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
                scenarios::store(&mut report, 100_000, postgres.as_deref()).await?;
                scenarios::start(&mut report, 30).await?;
                scenarios::logs(&mut report, 1_000_000, 2000).await?;
            }
            Scenario::CeilingServer(_) => unreachable!(),
        }
        report.print_table();
        Ok(())
    })
}
