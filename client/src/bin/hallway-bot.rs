//! `hallway-bot`: a headless Hallway client for demos, tests and load. Joins a
//! space as a guest, walks a path at normal speed, stays, then prints a JSON
//! report (and writes it to `--report`).

use anyhow::{Context, bail};
use clap::Parser;
use hallway_client::app::office::movement::{direction_towards, parse_route, step};
use hallway_client::core::api::Api;
use hallway_client::core::net::{self, NetEvent};
use hallway_client::core::state::{Change, SpaceState};
use hallway_shared::protocol::{ClientMessage, ServerMessage};
use hallway_shared::{SpaceId, TilePos, UserId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A headless Hallway client.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Server address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// Display name of the guest.
    #[arg(long, default_value = "Bot")]
    name: String,
    /// Space id or name (default: the first space listed).
    #[arg(long)]
    space: Option<String>,
    /// Tiles to walk to, in order: "x,y x,y ...".
    #[arg(long, default_value = "")]
    path: String,
    /// Seconds to stay after the walk.
    #[arg(long, default_value_t = 5.0)]
    stay: f64,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Seconds per step, as the desktop app walks.
const STEP: Duration = Duration::from_millis(150);

#[derive(Serialize, Default)]
struct Report {
    user_id: i64,
    space_id: i64,
    final_position: Option<(i32, i32)>,
    steps_taken: u32,
    steps_rejected: u32,
    /// Every peer seen, with the seconds since joining when the link started and ended.
    peers: BTreeMap<i64, PeerReport>,
}

#[derive(Serialize, Default)]
struct PeerReport {
    linked_at: Vec<f64>,
    unlinked_at: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let route = parse_route(&args.path).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let api = Api::new(&args.server);
    let auth = rt
        .block_on(api.guest(&args.name))
        .context("logging in as a guest")?;
    let api = api.with_token(auth.token.clone());
    let spaces = rt.block_on(api.spaces())?;
    let space = match &args.space {
        Some(want) => spaces
            .iter()
            .find(|s| s.id.to_string() == *want || s.name.eq_ignore_ascii_case(want))
            .with_context(|| format!("no space {want:?}"))?,
        None => spaces.first().context("the server has no spaces")?,
    };
    let space_id: SpaceId = space.id;
    let map = rt.block_on(api.map(space_id))?;
    let net = net::spawn(rt.handle(), api.ws_url(), auth.token);
    net.send(ClientMessage::join(space_id));

    let mut state = SpaceState::default();
    let mut report = Report {
        user_id: auth.user.id.0,
        space_id: space_id.0,
        ..Report::default()
    };
    let me: UserId = auth.user.id;
    let started = Instant::now();
    let mut joined = false;
    let mut route = route.into_iter().peekable();
    let mut next_step = Instant::now();
    let mut stay_until: Option<Instant> = None;
    let mut known_peers: Vec<UserId> = Vec::new();
    loop {
        while let Some(event) = net.recv_timeout(Duration::from_millis(10)) {
            match event {
                NetEvent::Message(msg) => {
                    joined |= absorb(&mut state, &mut report, &mut known_peers, started, &msg);
                }
                NetEvent::Unauthorized => bail!("the server refused the token"),
                NetEvent::Replaced => bail!("another connection took over"),
                _ => {}
            }
        }
        if !joined {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("could not join the space");
            }
            continue;
        }
        let Some(here) = state.members.get(&me).map(|m| TilePos::new(m.x, m.y)) else {
            continue;
        };
        if let Some(until) = stay_until {
            if Instant::now() >= until {
                break;
            }
            continue;
        }
        if Instant::now() < next_step {
            continue;
        }
        match route.peek().copied() {
            Some(target) if target == here => {
                route.next();
            }
            Some(target) => match direction_towards(&map, here, target) {
                Some(dir) => {
                    let to = step(here, dir);
                    net.send(ClientMessage::Move {
                        x: to.x,
                        y: to.y,
                        facing: dir,
                    });
                    report.steps_taken += 1;
                    next_step = Instant::now() + STEP;
                    // Wait for the server to apply it before planning the next step.
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < deadline {
                        let Some(NetEvent::Message(msg)) =
                            net.recv_timeout(Duration::from_millis(20))
                        else {
                            continue;
                        };
                        absorb(&mut state, &mut report, &mut known_peers, started, &msg);
                        let now_at = state.members.get(&me).map(|m| TilePos::new(m.x, m.y));
                        if now_at == Some(to) || matches!(*msg, ServerMessage::MoveRejected { .. })
                        {
                            break;
                        }
                    }
                }
                None => bail!("no way from {here:?} to {target:?}"),
            },
            None => stay_until = Some(Instant::now() + Duration::from_secs_f64(args.stay)),
        }
    }
    report.final_position = state.members.get(&me).map(|m| (m.x, m.y));
    net.send(ClientMessage::Leave);
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Applies a server message to the state and the report; true on `welcome`.
fn absorb(
    state: &mut SpaceState,
    report: &mut Report,
    known_peers: &mut Vec<UserId>,
    started: Instant,
    msg: &ServerMessage,
) -> bool {
    if let ServerMessage::MoveRejected { .. } = msg {
        report.steps_rejected += 1;
    }
    let mut welcomed = false;
    for change in state.apply(msg) {
        match change {
            Change::Welcomed => welcomed = true,
            Change::Peers => {
                let now = started.elapsed().as_secs_f64();
                let peers: Vec<UserId> = state.peers.iter().map(|p| p.user_id).collect();
                for p in peers.iter().filter(|p| !known_peers.contains(p)) {
                    report.peers.entry(p.0).or_default().linked_at.push(now);
                }
                for p in known_peers.iter().filter(|p| !peers.contains(p)) {
                    report.peers.entry(p.0).or_default().unlinked_at.push(now);
                }
                *known_peers = peers;
            }
            _ => {}
        }
    }
    welcomed
}
