//! The `hallway-server` binary itself: flags, env fallbacks, data directory,
//! graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_lists_every_flag_with_its_env_var() {
    let out = Command::new(env!("CARGO_BIN_EXE_hallway-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--bind", "HALLWAY_BIND"),
        ("--data-dir", "HALLWAY_DATA_DIR"),
        ("--maps-dir", "HALLWAY_MAPS_DIR"),
        ("--ice-server", "HALLWAY_ICE_SERVERS"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag}/{env} missing:\n{help}"
        );
    }
    assert!(help.contains("127.0.0.1:8080"));
}

#[tokio::test]
async fn serves_from_env_settings_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallway-server"))
        .env("HALLWAY_BIND", format!("127.0.0.1:{port}"))
        .env("HALLWAY_DATA_DIR", &data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        data.join("hallway.db").exists(),
        "the data directory was created"
    );
    // Two people in the office when the signal comes: both get 1001.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut clients = Vec::new();
    for name in ["Ann", "Bob"] {
        let auth: hallway_shared::protocol::AuthResponse = http
            .post(format!("http://{addr}/api/auth/guest"))
            .json(&hallway_shared::protocol::GuestRequest {
                display_name: name.into(),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut c = crate::common::Client::connect(addr, &auth.token)
            .await
            .unwrap();
        c.user = auth.user.id;
        c.join(crate::common::OFFICE).await;
        clients.push(c);
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    for c in &mut clients {
        c.drain(Duration::from_secs(1)).await;
        assert_eq!(c.closed, Some(Some(1001)), "user {} on SIGTERM", c.user);
    }
}

#[test]
fn a_bad_bind_address_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hallway-server"))
        .args(["--bind", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--bind"), "{err}");
}
