//! Load test: N people join the Office and walk around at once. Prints, for
//! each crowd size, how many joined and how long that took, the latency from
//! sending a step to seeing it come back in `presence` (what every other
//! client sees too), and the traffic each client receives.
//!
//! The server runs in this process on its own two-thread runtime, the bots on
//! another, all on loopback; on a 2-core machine bots and server share the
//! CPU, so the figures are an upper bound on the server's own latency.
//!
//! Run: `cargo bench -p hallway-server --bench load -- [USERS...] [--secs N]`
//! (default: 100 250 500 1000 users, 10 s of walking each).

use futures_util::{SinkExt, StreamExt};
use hallway_server::{Config, RunningServer};
use hallway_shared::protocol::{AuthResponse, ClientMessage, GuestRequest, ServerMessage};
use hallway_shared::{Facing, MapModel, SpaceId, TilePos};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What one bot measured.
#[derive(Default)]
struct BotReport {
    joined_in: Option<Duration>,
    step_latencies: Vec<Duration>,
    bytes: u64,
    rejected: u64,
}

fn main() -> anyhow::Result<()> {
    let mut users: Vec<usize> = Vec::new();
    let mut secs = 10u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            other => {
                if let Ok(n) = other.parse() {
                    users.push(n);
                }
            }
        }
    }
    if users.is_empty() {
        users = vec![100, 250, 500, 1000];
    }

    let dir = tempfile::tempdir()?;
    let mut config = Config::new(dir.path());
    config.guests_per_minute = 1_000_000;
    config.max_connections = 100_000;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = server_rt.block_on(RunningServer::start("127.0.0.1:0".parse()?, config))?;
    let addr = server.addr;
    let bots_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    println!("load: N people walking at 4 steps/s in one space, {secs} s per row");
    println!(
        "{:>6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>13}",
        "users",
        "joined",
        "join p50",
        "join p99",
        "step p50",
        "step p95",
        "step p99",
        "steps/s",
        "KiB/s/client"
    );
    for n in users {
        let row = bots_rt.block_on(run_level(addr, n, Duration::from_secs(secs)))?;
        println!("{row}");
    }
    server_rt.block_on(server.stop())?;
    Ok(())
}

async fn run_level(addr: SocketAddr, n: usize, walk: Duration) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let mut auths = Vec::with_capacity(n);
    for i in 0..n {
        let auth: AuthResponse = http
            .post(format!("http://{addr}/api/auth/guest"))
            .json(&GuestRequest {
                display_name: format!("bot{i}"),
            })
            .send()
            .await?
            .json()
            .await?;
        auths.push(auth);
    }
    let map: Arc<MapModel> = Arc::new(
        http.get(format!("http://{addr}/api/spaces/1/map"))
            .bearer_auth(&auths[0].token)
            .send()
            .await?
            .json()
            .await?,
    );
    // Everyone joins at once; walking starts when all had time to settle.
    let start = Instant::now() + Duration::from_secs(2) + Duration::from_millis(n as u64 * 4);
    let stop = start + walk;
    let tasks: Vec<_> = auths
        .into_iter()
        .enumerate()
        .map(|(i, auth)| tokio::spawn(bot(addr, auth, Arc::clone(&map), i as u64, start, stop)))
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await??);
    }
    let mut joins: Vec<Duration> = reports.iter().filter_map(|r| r.joined_in).collect();
    let mut steps: Vec<Duration> = reports
        .iter()
        .flat_map(|r| r.step_latencies.iter().copied())
        .collect();
    joins.sort();
    steps.sort();
    let pct = |v: &[Duration], p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
    };
    let secs = walk.as_secs_f64();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let rejected: u64 = reports.iter().map(|r| r.rejected).sum();
    if rejected > 0 {
        eprintln!("  ({rejected} steps were rejected)");
    }
    Ok(format!(
        "{:>6} {:>7} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>8.0} {:>13.1}",
        n,
        joins.len(),
        pct(&joins, 0.5),
        pct(&joins, 0.99),
        pct(&steps, 0.5),
        pct(&steps, 0.95),
        pct(&steps, 0.99),
        steps.len() as f64 / secs,
        bytes as f64 / 1024.0 / secs / n as f64,
    ))
}

/// Joins, then walks randomly at 4 steps a second, one step in flight at a
/// time, timing each until it comes back in `presence`.
async fn bot(
    addr: SocketAddr,
    auth: AuthResponse,
    map: Arc<MapModel>,
    seed: u64,
    start: Instant,
    stop: Instant,
) -> anyhow::Result<BotReport> {
    let mut report = BotReport::default();
    let mut req = format!("ws://{addr}/ws").into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {}", auth.token).parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    let (mut tx, mut rx) = ws.split();
    let me = auth.user.id;
    let join_sent = Instant::now();
    let join = ClientMessage::join(SpaceId(1));
    tx.send(Message::text(serde_json::to_string(&join)?))
        .await?;
    let mut pos = TilePos::new(0, 0);
    while let Some(frame) = rx.next().await {
        if let Message::Text(t) = frame?
            && t.as_str().starts_with("{\"type\":\"welcome\"")
        {
            if let ServerMessage::Welcome { you, .. } = serde_json::from_str(t.as_str())? {
                pos = TilePos::new(you.x, you.y);
            }
            report.joined_in = Some(join_sent.elapsed());
            break;
        }
    }

    let mut rng = seed
        .wrapping_mul(2654435761)
        .wrapping_add(0x9e3779b97f4a7c15);
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pending: Option<(String, Instant, TilePos)> = None;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start) + Duration::from_millis(next_rand() % 250),
        Duration::from_millis(250),
    );
    let deadline = tokio::time::Instant::from_std(stop);
    let measuring = |t: Instant| t >= start && t < stop;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {
                if pending.is_some() {
                    continue;
                }
                let options: Vec<TilePos> = [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .map(|(dx, dy)| TilePos::new(pos.x + dx, pos.y + dy))
                    .filter(|p| map.is_walkable(*p))
                    .collect();
                if options.is_empty() {
                    continue;
                }
                let to = options[next_rand() as usize % options.len()];
                let step = ClientMessage::Move { x: to.x, y: to.y, facing: Facing::Down };
                tx.send(Message::text(serde_json::to_string(&step)?)).await?;
                // How our step appears inside `presence.moved`.
                let needle = format!("{{\"user_id\":{me},\"x\":{},\"y\":{},", to.x, to.y);
                pending = Some((needle, Instant::now(), to));
            }
            frame = rx.next() => {
                let Some(frame) = frame else { break };
                let Message::Text(t) = frame? else { continue };
                let now = Instant::now();
                if measuring(now) {
                    report.bytes += t.len() as u64;
                }
                let text = t.as_str();
                let Some((needle, sent, to)) = &pending else { continue };
                if text.starts_with("{\"type\":\"presence\"") && text.contains(needle.as_str()) {
                    if measuring(*sent) {
                        report.step_latencies.push(now - *sent);
                    }
                    pos = *to;
                    pending = None;
                } else if text.starts_with("{\"type\":\"move_rejected\"") {
                    if let ServerMessage::MoveRejected { x, y, .. } = serde_json::from_str(text)? {
                        pos = TilePos::new(x, y);
                    }
                    report.rejected += 1;
                    pending = None;
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
    Ok(report)
}
