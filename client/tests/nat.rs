//! Calls across real networks. Each test builds a small internet in network
//! namespaces: an "internet" bridge with the real `hallway-server` binary on
//! it (10.0.0.1, relay on by default), and home networks, each behind a
//! router namespace that masquerades (nftables) and lets in only what its
//! hosts asked for, as a home router does. Both homes use 192.168.1.0/24, so
//! private addresses lead nowhere. Real `hallway-bot` processes with fake
//! tones (and cameras) call each other; what they hear is read back from the
//! WAV they play into.
//!
//! Needs root (CI runs as root) and `ip`/`nft`; without them the tests fail
//! and say so, rather than pass.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERVER_IP: &str = "10.0.0.1";
const HTTP: &str = "10.0.0.1:8080";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A home: its router's namespace and the host behind it.
#[derive(Clone, Copy)]
enum Site {
    /// On the internet bridge, no NAT (like the server).
    Public,
    HomeA,
    HomeB,
}

struct Net {
    prefix: String,
    namespaces: Vec<String>,
    /// The server process, while it runs.
    server: Option<Child>,
    dir: tempfile::TempDir,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run {cmd:?}: {e} (install iproute2 and nftables)")
    });
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed: {}\nThe NAT tests need root to create network namespaces \
         (CI runs as root) and the ip and nft tools (scripts/lib.sh installs them).",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn ip(&self, args: &[&str]) {
        run(Command::new("ip").args(args), "ip");
    }

    fn in_ns(&self, ns: &str, args: &[&str]) {
        run(
            Command::new("ip")
                .args(["netns", "exec", &self.ns(ns)])
                .args(args),
            "netns exec",
        );
    }

    fn nft(&self, ns: &str, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nft: {e} (install nftables)"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft in {ns}: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The internet (with the server host on it), a public host, and two
    /// homes behind NAT routers.
    fn build() -> Net {
        let prefix = format!(
            "hw{}-{}-",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            prefix,
            namespaces: Vec::new(),
            server: None,
            dir: tempfile::tempdir().unwrap(),
        };
        for ns in ["inet", "pub", "ra", "ha", "rb", "hb"] {
            let name = net.ns(ns);
            net.ip(&["netns", "add", &name]);
            net.namespaces.push(name);
            net.in_ns(ns, &["ip", "link", "set", "lo", "up"]);
        }
        let inet = net.ns("inet");
        net.in_ns("inet", &["ip", "link", "add", "br0", "type", "bridge"]);
        net.in_ns("inet", &["ip", "addr", "add", "10.0.0.1/24", "dev", "br0"]);
        net.in_ns("inet", &["ip", "link", "set", "br0", "up"]);
        // A host on the internet and the two routers' outside ends.
        for (ns, ip) in [("pub", "10.0.0.50"), ("ra", "10.0.0.2"), ("rb", "10.0.0.3")] {
            let port = format!("p-{ns}");
            net.ip(&[
                "-n",
                &net.ns(ns),
                "link",
                "add",
                "wan",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &inet,
            ]);
            net.in_ns("inet", &["ip", "link", "set", &port, "master", "br0", "up"]);
            net.in_ns(
                ns,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "wan"],
            );
            net.in_ns(ns, &["ip", "link", "set", "wan", "up"]);
        }
        for (router, home, host) in [("ra", "ha", "192.168.1.10"), ("rb", "hb", "192.168.1.20")] {
            let home_ns = net.ns(home);
            net.ip(&[
                "-n",
                &net.ns(router),
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &home_ns,
            ]);
            net.in_ns(
                router,
                &["ip", "addr", "add", "192.168.1.1/24", "dev", "lan"],
            );
            net.in_ns(router, &["ip", "link", "set", "lan", "up"]);
            net.in_ns(
                home,
                &["ip", "addr", "add", &format!("{host}/24"), "dev", "eth0"],
            );
            net.in_ns(home, &["ip", "link", "set", "eth0", "up"]);
            net.in_ns(
                home,
                &["ip", "route", "add", "default", "via", "192.168.1.1"],
            );
            net.in_ns(router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
            // A home router: outgoing traffic is masqueraded; from outside
            // only answers to it come in, and the router itself answers
            // nobody on its outside (unsolicited datagrams are dropped, not
            // refused: a refused one would leave a conntrack entry that
            // makes the next outgoing mapping change port).
            net.nft(
                router,
                "table ip home {
                    chain post { type nat hook postrouting priority srcnat; oifname \"wan\" masquerade; }
                    chain guard {
                        type filter hook forward priority filter; policy drop;
                        ct state established,related accept
                        iifname \"lan\" oifname \"wan\" accept
                    }
                    chain inbound {
                        type filter hook input priority filter; policy accept;
                        iifname \"wan\" ct state established,related accept
                        iifname \"wan\" drop
                    }
                }",
            );
        }
        net
    }

    /// Drops every UDP datagram between the two homes' routers: no direct
    /// path is left, only the relay.
    fn cut_udp_between_homes(&self) {
        self.nft(
            "ra",
            "table ip cut {
                chain guard {
                    type filter hook forward priority -10;
                    ip daddr 10.0.0.3 meta l4proto udp drop
                    ip saddr 10.0.0.3 meta l4proto udp drop
                }
            }",
        );
    }

    /// Home A's router gets a new public address (as after a DHCP renewal
    /// or a new uplink): every mapping it had is gone.
    fn renumber_home_a(&self) {
        // Deleting first: deleting a primary address also deletes the
        // secondary ones of its subnet.
        self.in_ns("ra", &["ip", "addr", "del", "10.0.0.2/24", "dev", "wan"]);
        self.in_ns("ra", &["ip", "addr", "add", "10.0.0.12/24", "dev", "wan"]);
    }

    /// Home A's router forgets its UDP mappings and from now on gives each
    /// new one a random port (as a NAT whose mappings time out and rebind):
    /// the call's path breaks while TCP, and so the WebSocket, lives on.
    fn rebind_udp_home_a(&self) {
        self.nft(
            "ra",
            "flush chain ip home post
             add rule ip home post oifname \"wan\" masquerade random",
        );
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("ra"),
                "conntrack",
                "-D",
                "-p",
                "udp",
            ])
            .output()
            .expect("conntrack (install the conntrack package)");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("flow entries have been deleted"),
            "conntrack: {said}"
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the server binary on the internet and waits until it listens.
    fn start_server(&mut self) {
        let exe = sibling_binary("hallway-server");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns("inet")])
            .arg(&exe)
            .args(["--bind", HTTP, "--data-dir"])
            .arg(self.path("server-data"))
            .args(["--turn-bind", &format!("{SERVER_IP}:3478")])
            .env("RUST_LOG", "hallway_server=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The server logs to standard output.
        let stderr = child.stdout.take().unwrap();
        self.server = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // Logged after it listens on HTTP, once the relay runs.
                Ok(line) if line.contains("STUN/TURN relay on udp 10.0.0.1:3478") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("the server's relay never started: {seen:#?}"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
    }

    /// Kills the server (as a crash or a power cut would: no goodbyes).
    fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a bot at `site` that walks to `tile`, talks with a `hz` tone
    /// and plays what it hears into a WAV; it stays `stay` seconds.
    fn bot(
        &mut self,
        site: Site,
        name: &str,
        tile: &str,
        hz: u32,
        stay: f64,
        extra: &[&str],
    ) -> BotRun {
        let ns = match site {
            Site::Public => "pub",
            Site::HomeA => "ha",
            Site::HomeB => "hb",
        };
        let report = self.path(&format!("{name}.json"));
        let wav = self.path(&format!("{name}.wav"));
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .arg(env!("CARGO_BIN_EXE_hallway-bot"))
            .args(["--server", HTTP, "--name", name, "--path", tile])
            .args(["--stay", &stay.to_string()])
            .args(["--fake-mic", &format!("tone:{hz}")])
            .arg("--audio-out")
            .arg(format!("wav:{}", wav.display()))
            .arg("--report")
            .arg(&report)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        BotRun {
            name: name.to_owned(),
            prefix: self.prefix.clone(),
            child: Some(child),
            log: self.path(&format!("{name}.log")),
            report,
            wav,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop_server();
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A binary of the workspace next to this test's own (`cargo test
/// --workspace` builds the server's binary for its own tests).
fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p hallway-server, or run cargo test --workspace)",
        path.display()
    );
    path
}

struct BotRun {
    name: String,
    /// The network's namespace prefix (names the saved log).
    prefix: String,
    child: Option<Child>,
    /// Its standard error (RUST_LOG=hallway_client=debug to see more).
    log: PathBuf,
    report: PathBuf,
    wav: PathBuf,
}

/// What one bot ended with.
struct Outcome {
    /// The one peer it had.
    peer: serde_json::Value,
    /// Wall clock of the output's first sample, in Unix µs.
    output_started_us: u64,
    /// For each 20 ms of its output: was the peer's tone there?
    heard: Vec<bool>,
}

const WINDOW: usize = 960; // 20 ms at 48 kHz

impl BotRun {
    fn finish(mut self, peer_hz: u32, within: Duration) -> Outcome {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("bot {} did not finish in {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(dir) = std::env::var("HALLWAY_NAT_LOGS") {
            let file = format!("{}{}.log", self.prefix, self.name);
            let _ = std::fs::write(Path::new(&dir).join(file), &stderr);
        }
        assert!(status.success(), "bot {} failed: {stderr}", self.name);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.report).unwrap()).unwrap();
        let peers = report["peers"].as_object().unwrap();
        assert_eq!(peers.len(), 1, "bot {}: {report:#}", self.name);
        let peer = peers.values().next().unwrap().clone();
        let (left, right) = hallway_client::media::device::read_wav_stereo(&self.wav).unwrap();
        let mono: Vec<f32> = left
            .iter()
            .zip(&right)
            .map(|(l, r)| (l + r) / 2.0)
            .collect();
        let heard = mono
            .chunks_exact(WINDOW)
            .map(|w| tone_amplitude(w, peer_hz as f32) > 0.005)
            .collect();
        let output_started_us = report["voice"]["output_started_unix_us"].as_u64().unwrap();
        Outcome {
            peer,
            output_started_us,
            heard,
        }
    }
}

/// The amplitude of `hz` in `window` (Goertzel).
fn tone_amplitude(window: &[f32], hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * hz / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in window {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / window.len() as f32
}

impl Outcome {
    /// Milliseconds from the server linking us to the connection coming up.
    fn connect_ms(&self) -> f64 {
        let first = |k: &str| self.peer[k][0].as_f64().unwrap_or(f64::NAN);
        (first("connected_at") - first("linked_at")) * 1000.0
    }

    fn route(&self) -> &str {
        self.peer["route"].as_str().unwrap_or("none")
    }

    /// Seconds of output in which the peer's tone was heard.
    fn heard_seconds(&self) -> f64 {
        self.heard.iter().filter(|h| **h).count() as f64 * 0.02
    }

    /// Seconds from `at` (wall clock) to the first time the tone was heard
    /// after it.
    fn heard_again_after(&self, at: std::time::SystemTime) -> f64 {
        let at_us = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let from = at_us.saturating_sub(self.output_started_us) / 20_000;
        let from = usize::try_from(from).unwrap().min(self.heard.len());
        self.heard[from..]
            .iter()
            .position(|h| *h)
            .map_or(f64::INFINITY, |i| i as f64 * 0.02)
    }

    /// The longest silence between the first and the last time the tone
    /// was heard, in seconds.
    fn longest_gap(&self) -> f64 {
        let first = self.heard.iter().position(|h| *h);
        let last = self.heard.iter().rposition(|h| *h);
        let (Some(first), Some(last)) = (first, last) else {
            return f64::INFINITY;
        };
        let mut longest = 0usize;
        let mut run = 0usize;
        for h in &self.heard[first..=last] {
            run = if *h { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        longest as f64 * 0.02
    }
}

/// Case 1: two homes behind NAT; their routers can reach each other.
#[test]
fn two_homes_behind_nat_call_each_other() {
    let mut net = Net::build();
    net.start_server();
    let ann = net.bot(Site::HomeA, "Ann", "20,9", 440, 8.0, &[]);
    let bob = net.bot(Site::HomeB, "Bob", "22,9", 660, 8.0, &[]);
    let (ann, bob) = (
        ann.finish(660, Duration::from_secs(40)),
        bob.finish(440, Duration::from_secs(40)),
    );
    for (who, o) in [("Ann", &ann), ("Bob", &bob)] {
        assert!(
            !o.peer["connected_at"].as_array().unwrap().is_empty(),
            "{who} never connected: {:#}",
            o.peer
        );
        assert!(
            ["srflx", "relay"].contains(&o.route()),
            "{who}: route {} across two NATs",
            o.route()
        );
        assert!(
            o.heard_seconds() > 3.0,
            "{who} heard the other for {} s",
            o.heard_seconds()
        );
    }
    eprintln!(
        "two homes: routes {} / {}, connected after {:.0} / {:.0} ms, first audio {} / {} ms",
        ann.route(),
        bob.route(),
        ann.connect_ms(),
        bob.connect_ms(),
        ann.peer["first_audio_ms"],
        bob.peer["first_audio_ms"]
    );
}

/// Case 2: no UDP between the homes at all: only the relay carries the
/// call, voice and video.
#[test]
fn with_udp_between_homes_cut_the_relay_carries_voice_and_video() {
    let mut net = Net::build();
    net.cut_udp_between_homes();
    net.start_server();
    let video = ["--fake-camera", "pattern"];
    let ann = net.bot(Site::HomeA, "Ann", "20,9", 440, 8.0, &video);
    let bob = net.bot(Site::HomeB, "Bob", "22,9", 660, 8.0, &video);
    let (ann, bob) = (
        ann.finish(660, Duration::from_secs(40)),
        bob.finish(440, Duration::from_secs(40)),
    );
    for (who, o) in [("Ann", &ann), ("Bob", &bob)] {
        assert_eq!(o.route(), "relay", "{who}: {:#}", o.peer);
        assert!(
            o.heard_seconds() > 3.0,
            "{who} heard the other for {} s",
            o.heard_seconds()
        );
        let frames = o.peer["video_frames"].as_u64().unwrap();
        assert!(
            frames >= 30,
            "{who} got {frames} pictures through the relay"
        );
    }
    eprintln!(
        "relayed: connected after {:.0} / {:.0} ms, first audio {} / {} ms, first video {} / {} ms",
        ann.connect_ms(),
        bob.connect_ms(),
        ann.peer["first_audio_ms"],
        bob.peer["first_audio_ms"],
        ann.peer["first_video_ms"],
        bob.peer["first_video_ms"]
    );
}

/// Case 3: one bot on the server's network, one behind NAT; and a bot that
/// asks for relay only gets a relayed route even there.
#[test]
fn a_public_host_and_a_home_connect_and_relay_only_relays() {
    let mut net = Net::build();
    net.start_server();
    let cy = net.bot(Site::Public, "Cy", "20,9", 440, 7.0, &[]);
    let ann = net.bot(Site::HomeA, "Ann", "22,9", 660, 7.0, &[]);
    let (cy, ann) = (
        cy.finish(660, Duration::from_secs(40)),
        ann.finish(440, Duration::from_secs(40)),
    );
    for (who, o) in [("Cy", &cy), ("Ann", &ann)] {
        assert!(
            ["host", "srflx", "relay"].contains(&o.route()),
            "{who}: {:#}",
            o.peer
        );
        assert!(
            o.heard_seconds() > 3.0,
            "{who} heard the other for {} s",
            o.heard_seconds()
        );
    }
    eprintln!(
        "public and home: route {}, connected after {:.0} / {:.0} ms, first audio {} / {} ms",
        cy.route(),
        cy.connect_ms(),
        ann.connect_ms(),
        cy.peer["first_audio_ms"],
        ann.peer["first_audio_ms"]
    );

    let cy = net.bot(Site::Public, "Cy2", "20,9", 440, 7.0, &["--relay-only"]);
    let ann = net.bot(Site::HomeA, "Ann2", "22,9", 660, 7.0, &[]);
    let (cy, ann) = (
        cy.finish(660, Duration::from_secs(40)),
        ann.finish(440, Duration::from_secs(40)),
    );
    assert_eq!(cy.route(), "relay", "{:#}", cy.peer);
    assert_eq!(ann.route(), "relay", "{:#}", ann.peer);
    assert!(cy.heard_seconds() > 3.0 && ann.heard_seconds() > 3.0);
}

/// Case 4: mid-call, home A's router loses its UDP mappings and maps anew
/// on other ports: the call comes back by itself, by an ICE restart, within
/// 3 s of the break (the path is usable again at once).
#[test]
fn a_call_whose_nat_rebinds_recovers_by_ice_restart_within_3_s() {
    let mut net = Net::build();
    net.start_server();
    let ann = net.bot(Site::HomeA, "Ann", "20,9", 440, 16.0, &[]);
    let bob = net.bot(Site::HomeB, "Bob", "22,9", 660, 16.0, &[]);
    std::thread::sleep(Duration::from_secs(8));
    net.rebind_udp_home_a();
    let (ann, bob) = (
        ann.finish(660, Duration::from_secs(60)),
        bob.finish(440, Duration::from_secs(60)),
    );
    check_recovery(&ann, &bob, 3.0);
}

/// Case 4, the relay restarts: the only path between the homes is the relay
/// (UDP between them is cut), and the server with its relay dies mid-call and
/// comes back 2 s later on the same data (so the same secret). Every relayed
/// path is gone with it; the call comes back by itself within 3 s of the
/// server's return.
#[test]
fn a_relayed_call_comes_back_after_the_relay_restarts() {
    let mut net = Net::build();
    net.cut_udp_between_homes();
    net.start_server();
    let ann = net.bot(Site::HomeA, "Ann", "20,9", 440, 20.0, &[]);
    let bob = net.bot(Site::HomeB, "Bob", "22,9", 660, 20.0, &[]);
    std::thread::sleep(Duration::from_secs(8));
    net.stop_server();
    let down = Duration::from_secs(2);
    std::thread::sleep(down);
    net.start_server();
    let back = std::time::SystemTime::now();
    let (ann, bob) = (
        ann.finish(660, Duration::from_secs(60)),
        bob.finish(440, Duration::from_secs(60)),
    );
    assert_eq!(ann.route(), "relay");
    check_recovery(&ann, &bob, down.as_secs_f64() + 3.0);
    for (who, o) in [("Ann", &ann), ("Bob", &bob)] {
        let after = o.heard_again_after(back);
        eprintln!("{who} heard the other again {after:.2} s after the relay was back");
        assert!(
            after <= 3.0,
            "{who}: {after:.2} s after the relay came back"
        );
    }
}

/// Case 4, harder: home A's router gets a new public address (a new uplink,
/// as when a laptop changes networks). The WebSocket dies too: the bot
/// notices when its call does (a probe, or the reset), reconnects at once and
/// resumes its place (the same client run), and the call comes back by
/// itself, by an ICE restart, within 3 s.
#[test]
fn a_call_whose_nat_changes_address_comes_back() {
    let mut net = Net::build();
    net.start_server();
    // With video too: it must come back as well as the voice.
    let video = |name: &str| {
        let dir = net.path(&format!("{name}-video"));
        [
            "--fake-camera".to_owned(),
            "pattern".into(),
            "--video-out".into(),
            dir.display().to_string(),
        ]
    };
    let (ann_video, bob_video) = (video("Ann"), video("Bob"));
    fn args(v: &[String; 4]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let started = Instant::now();
    let ann = net.bot(Site::HomeA, "Ann", "20,9", 440, 18.0, &args(&ann_video));
    let bob = net.bot(Site::HomeB, "Bob", "22,9", 660, 18.0, &args(&bob_video));
    std::thread::sleep(Duration::from_secs(8));
    let broke = started.elapsed().as_secs_f64();
    net.renumber_home_a();
    let (ann, bob) = (
        ann.finish(660, Duration::from_secs(60)),
        bob.finish(440, Duration::from_secs(60)),
    );
    check_recovery(&ann, &bob, 3.0);
    // Pictures were saved (one a second) well after the break: video resumed.
    for (who, o) in [("Ann", &ann), ("Bob", &bob)] {
        let times: Vec<f64> = o.peer["video_files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| {
                let name = f.as_str()?;
                let secs = name.rsplit('-').next()?.strip_suffix("s.png")?;
                secs.parse().ok()
            })
            .collect();
        let after = times.iter().filter(|t| **t > broke + 3.5).count();
        eprintln!(
            "{who}: {} pictures saved, {after} of them more than 3.5 s after the break",
            times.len()
        );
        assert!(
            after >= 4,
            "{who}'s video did not come back: {times:?} (break at {broke:.1} s)"
        );
    }
}

fn check_recovery(ann: &Outcome, bob: &Outcome, limit: f64) {
    for (who, o) in [("Ann", ann), ("Bob", bob)] {
        let gap = o.longest_gap();
        eprintln!(
            "{who}: route {}, longest silence {gap:.2} s, heard {:.1} s, connected at {}, ICE restarts {}",
            o.route(),
            o.heard_seconds(),
            o.peer["connected_at"],
            o.peer["ice_restarts"]
        );
        // The tone came back and was there at the end.
        let last = o.heard.iter().rposition(|h| *h).unwrap_or(0);
        assert!(
            last + 100 >= o.heard.len(),
            "{who} did not hear the other at the end"
        );
        assert!(gap <= limit, "{who} was cut off for {gap:.2} s");
        // The break was real: the tone stopped, and came back.
        assert!(
            gap >= 0.5,
            "{who}'s call never broke ({gap:.2} s): the test changed nothing"
        );
    }
}
