//! The ceiling: a bare tokio WebSocket broadcast of pre-serialised frames,
//! run as its own process on the server's core, measured by the same
//! clients. Each frame looks like what the real server sends.

use std::{
    io::{BufRead, Write},
    time::Duration,
};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::broadcast};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::HeaderValue,
    protocol::Message,
    Utf8Bytes,
};

use crate::client::now_ns;

/// Parameters passed to the ceiling process.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct CeilingArgs {
    #[arg(long)]
    pub subscribers: usize,
    #[arg(long)]
    pub messages: u64,
    #[arg(long)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
}

/// A frame as the real server would send it for message `seq`.
fn frame(seq: u64, size: usize) -> String {
    let text = "y".repeat(size.saturating_sub(12));
    format!(
        "{{\"id\":\"1\",\"type\":\"next\",\"payload\":{{\"data\":{{\"executionEvents\":{{\"__typename\":\"MessageEvent\",\"seq\":{seq},\
         \"message\":{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"message {seq} {text}\"}}]}},\"emit_ns\":{}}}}}}}}}}}",
        now_ns()
    )
}

/// Answers the handshake with the subprotocol the clients ask for.
#[allow(clippy::result_large_err)] // the signature tungstenite's callback has
fn with_protocol(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    Ok(response)
}

/// The ceiling server's main: prints its port, accepts the subscribers,
/// waits for a line on stdin, broadcasts, and exits when all are served.
pub fn serve(args: CeilingArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        let (tx, _) = broadcast::channel::<Utf8Bytes>(args.messages as usize + 2);
        let mut tasks = Vec::new();
        for _ in 0..args.subscribers {
            let (stream, _) = listener.accept().await?;
            let mut rx = tx.subscribe();
            tasks.push(tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_hdr_async(stream, with_protocol).await?;
                // The handshake and subscribe, as with the real server.
                let _init = socket.next().await;
                socket.send(Message::text("{\"type\":\"connection_ack\"}")).await?;
                let _subscribe = socket.next().await;
                while let Ok(frame) = rx.recv().await {
                    socket.send(Message::Text(frame)).await?;
                }
                anyhow::Ok(())
            }));
        }
        let mut line = String::new();
        tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await??;
        for seq in 1..=args.messages {
            if args.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
            }
            let _ = tx.send(Utf8Bytes::from(frame(seq, args.size)));
            if args.delay_ms == 0 && seq % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let _ = tx.send(Utf8Bytes::from_static("{\"id\":\"1\",\"type\":\"complete\"}"));
        drop(tx);
        for task in tasks {
            let _ = task.await;
        }
        anyhow::Ok(())
    })
}

/// A running ceiling process.
pub struct Ceiling {
    pub child: std::process::Child,
    pub port: u16,
}

impl Ceiling {
    pub fn start(core: usize, args: CeilingArgs) -> Result<Ceiling> {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .arg("ceiling-server")
            .args(["--subscribers", &args.subscribers.to_string(), "--messages", &args.messages.to_string()])
            .args(["--size", &args.size.to_string(), "--delay-ms", &args.delay_ms.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                crate::proc::pin_self(core);
                crate::proc::raise_fd_limit();
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut port)?;
        Ok(Ceiling { port: port.trim().parse().context("ceiling port")?, child })
    }

    pub fn go(&mut self) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    }
}
