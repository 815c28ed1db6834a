//! Relay cost: the real `hallway-server` binary (its own process, so its CPU
//! time is its own) relays N streams from TURN clients to UDP peers on
//! loopback. An audio stream is what one Opus voice sends: a 120-byte SRTP
//! packet every 20 ms (32 kbit/s plus headers); a video stream is 640×480 at
//! about 800 kbit/s: 1 100-byte packets, 90 a second. Prints the server's CPU
//! (share of one core, from /proc/PID/schedstat), its resident memory, and the
//! share of packets delivered. The load comes from the `turn` crate's client
//! (what webrtc-ice uses), one client and one allocation per stream, each
//! with its own user's credential.
//!
//! Run: `cargo bench -p hallway-server --bench relay -- [audio:N|video:N ...] [--secs S]`
//! (default: audio:50 audio:200 video:20, 10 s each). Linux only (/proc).

use anyhow::Context;
use hallway_server::relay::Credentials;
use hallway_server::relay::credentials::SECRET_FILE;
use hallway_shared::UserId;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use turn::client::{Client as TurnClient, ClientConfig};
use webrtc_util::Conn;

#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    streams: usize,
    bytes: usize,
    every: Duration,
}

fn parse(arg: &str) -> Option<Load> {
    let (kind, n) = arg.split_once(':')?;
    let streams = n.parse().ok()?;
    match kind {
        "audio" => Some(Load {
            name: "audio",
            streams,
            bytes: 120,
            every: Duration::from_millis(20),
        }),
        "video" => Some(Load {
            name: "video",
            streams,
            bytes: 1100,
            every: Duration::from_micros(11_111),
        }),
        _ => None,
    }
}

struct Server {
    child: Child,
    turn: SocketAddr,
    credentials: Credentials,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_server(dir: &std::path::Path) -> anyhow::Result<Server> {
    let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let turn: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallway-server"))
        .args([
            "--bind",
            &http.to_string(),
            "--turn-bind",
            &turn.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        // Loopback peers are denied by default; this bench relays to them.
        .args(["--relay-deny", "255.255.255.255/32"])
        .args([
            "--relay-user-allocations",
            "4",
            "--relay-user-kbps",
            "100000",
        ])
        .env("RUST_LOG", "hallway_server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting hallway-server")?;
    let out = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines
            .next()
            .context("the server ended before its relay started")??;
        if line.contains("STUN/TURN relay on udp") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let secret = std::fs::read_to_string(dir.join(SECRET_FILE))?;
    Ok(Server {
        child,
        turn,
        credentials: Credentials::new(secret.trim().as_bytes(), Duration::from_secs(3600)),
    })
}

/// CPU time all the process's threads have run, from the scheduler's own
/// count (/proc/PID/schedstat alone is the main thread's).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between listing and reading.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let first: u64 = text
            .split_whitespace()
            .next()
            .context("schedstat")?
            .parse()?;
        ns += first;
    }
    Ok(Duration::from_nanos(ns))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// One stream: a TURN client with its allocation, and the peer it sends to.
struct Stream {
    _client: TurnClient,
    relayed: Arc<dyn Conn + Send + Sync>,
    peer: Arc<UdpSocket>,
}

async fn open_stream(server: &Server, user: i64) -> anyhow::Result<Stream> {
    let issued = server.credentials.issue(UserId(user), SystemTime::now());
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let addr = server.turn.to_string();
    let client = TurnClient::new(ClientConfig {
        stun_serv_addr: addr.clone(),
        turn_serv_addr: addr,
        username: issued.username,
        password: issued.password,
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await?;
    client.listen().await?;
    let relayed: Arc<dyn Conn + Send + Sync> = Arc::new(client.allocate().await?);
    let peer = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    Ok(Stream {
        _client: client,
        relayed,
        peer,
    })
}

async fn run(server: &Server, load: Load, secs: u64, first_user: i64) -> anyhow::Result<()> {
    let mut streams = Vec::with_capacity(load.streams);
    for i in 0..load.streams {
        streams.push(open_stream(server, first_user + i as i64).await?);
    }
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let peer_addr = s.peer.local_addr()?;
        let relayed = s.relayed.clone();
        let (sent, on, halt) = (sent.clone(), measuring.clone(), stop.clone());
        let payload = vec![0xA5u8; load.bytes];
        // Spread the streams' packets over the interval, as real calls are.
        let offset = load.every.mul_f64(i as f64 / load.streams as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(load.every);
            loop {
                tokio::select! {
                    () = halt.cancelled() => break,
                    _ = tick.tick() => {
                        if relayed.send_to(&payload, peer_addr).await.is_ok()
                            && on.load(Ordering::Relaxed)
                        {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
        let (peer, received, on, halt) = (
            s.peer.clone(),
            received.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                tokio::select! {
                    () = halt.cancelled() => break,
                    r = peer.recv_from(&mut buf) => {
                        if r.is_ok() && on.load(Ordering::Relaxed) {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    // Let permissions and channels settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.child.id();
    let cpu0 = cpu_time(pid)?;
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = cpu_time(pid)? - cpu0;
    let wall = t0.elapsed();
    let rss = rss_kib(pid)?;
    // Packets still on their way count as delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let (sent, received) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    let core = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "{:>5} {:>4} streams | server CPU {:>5.1}% of a core, {:.3}% per stream | RSS {:>6} KiB | {:>7} pkt/s relayed, {:.1}% delivered",
        load.name,
        load.streams,
        core,
        core / load.streams as f64,
        rss,
        (received as f64 / wall.as_secs_f64()).round(),
        if sent == 0 {
            0.0
        } else {
            received as f64 / sent as f64 * 100.0
        }
    );
    for s in &streams {
        let _ = s.relayed.close().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut loads = Vec::new();
    let mut secs = 10u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--secs" {
            secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs);
        } else if let Some(load) = parse(&a) {
            loads.push(load);
        }
    }
    if loads.is_empty() {
        loads = ["audio:50", "audio:200", "video:20"]
            .iter()
            .filter_map(|a| parse(a))
            .collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut first_user = 1;
    for load in loads {
        // A fresh server for each load, so memory is that load's.
        let dir = tempfile::tempdir()?;
        let server = start_server(dir.path())?;
        let idle_rss = rss_kib(server.child.id())?;
        if first_user == 1 {
            println!("idle server RSS {idle_rss} KiB");
        }
        rt.block_on(run(&server, load, secs, first_user))?;
        first_user += load.streams as i64;
    }
    Ok(())
}
