//! Proximity voice end to end on loopback: a real server, real WebRTC peers
//! (webrtc-rs), real Opus, bots with fake microphones (tones) whose mixed
//! output is recorded to WAV files, which the tests then analyse.
#![allow(clippy::unwrap_used)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::device::read_wav_stereo;
use hallway_client::media::room::RoomSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_client::rtc::RtcOptions;
use hallway_shared::TilePos;
use hallway_shared::volume::distance_gain;
use std::time::Duration;

mod common;
use common::{Server, record, rms, tone_amplitude, tone_both, voice_bot, window};

#[test]
fn two_bots_hear_each_other_louder_when_closer_and_from_their_side() {
    let server = Server::start(false);
    let (a_out, b_out) = (server.path("a.wav"), server.path("b.wav"));
    // In the corridor (y = 9), 12 tiles apart: not peers.
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), Some(&a_out));
    let b = voice_bot(&server, "Bo", 1000.0, TilePos::new(32, 9), Some(&b_out));
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.peers().is_empty(), "12 tiles apart and linked");
    let (q0, q1) = record(&a, 1.0);

    // Bo walks to 4 tiles away (enter radius 5): they connect.
    b.walk_to(TilePos::new(24, 9)).unwrap();
    assert!(a.wait_for(Duration::from_secs(5), |a| {
        a.connected().contains(&b.user_id)
    }));
    assert!(b.wait_for(Duration::from_secs(5), |b| {
        b.connected().contains(&a.user_id)
    }));
    std::thread::sleep(Duration::from_millis(600));
    let (f4a, f4b) = record(&a, 2.0);

    // 2 tiles away (full volume).
    b.walk_to(TilePos::new(22, 9)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let (f2a, f2b) = record(&a, 2.0);

    // 2 tiles to Ann's left, by the other lane of the corridor.
    b.walk(&[
        TilePos::new(22, 10),
        TilePos::new(18, 10),
        TilePos::new(18, 9),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let (fla, flb) = record(&a, 2.0);

    // 10 tiles away: beyond the leave radius, the link closes.
    b.walk(&[
        TilePos::new(18, 10),
        TilePos::new(28, 10),
        TilePos::new(28, 9),
    ])
    .unwrap();
    assert!(a.wait_for(Duration::from_secs(5), |a| a.peers().is_empty()));
    assert!(a.wait_for(Duration::from_secs(5), |a| a.connected().is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let (fsa, fsb) = record(&a, 1.5);

    let report_a = a.stop();
    let report_b = b.stop();
    let rec_a = read_wav_stereo(&a_out).unwrap();
    let rec_b = read_wav_stereo(&b_out).unwrap();

    let quiet = window(&rec_a, q0, q1);
    assert!(
        rms(&quiet.0) < 1e-3 && rms(&quiet.1) < 1e-3,
        "sound before linking"
    );

    // At 4 tiles: Bo's tone (1000 Hz), not Ann's own (440 Hz).
    let w4 = window(&rec_a, f4a, f4b);
    let bo4 = tone_both(&w4, 1000.0);
    let own4 = tone_both(&w4, 440.0);
    assert!(bo4 > 0.05, "Bo's tone at 4 tiles: {bo4}");
    assert!(own4 < bo4 / 100.0, "Ann hears herself: {own4} vs {bo4}");

    // At 2 tiles, louder by the shared curve: gain(2)/gain(4) = 1/0.5.
    // Both windows have Bo to the right (same pan), Opus is linear in level
    // to well within 1 dB at these levels, and 2 s windows average out the
    // codec's frame-to-frame variation, so the ratio must be within 10%.
    let w2 = window(&rec_a, f2a, f2b);
    let bo2 = tone_both(&w2, 1000.0);
    let want = f64::from(distance_gain(2.0, 2.0, 6.0) / distance_gain(4.0, 2.0, 6.0));
    let ratio = bo2 / bo4;
    assert!(
        (ratio / want - 1.0).abs() < 0.10,
        "2 tiles vs 4: {ratio:.3}, the curve says {want:.3}"
    );
    // Bo stood to the right: the right ear louder.
    assert!(w2.1.iter().map(|v| v.abs()).sum::<f32>() > w2.0.iter().map(|v| v.abs()).sum::<f32>());

    // To the left: the left channel louder, by the equal-power pan law
    // (fully left: cos/sin of the pan angle ≈ 0.968 / 0.25).
    let wl = window(&rec_a, fla, flb);
    let (l, r) = (tone_amplitude(&wl.0, 1000.0), tone_amplitude(&wl.1, 1000.0));
    assert!(l > 3.0 * r, "left {l:.4} right {r:.4}");
    assert!(r > 0.0, "the far ear never goes silent");

    // Apart again: silence.
    let ws = window(&rec_a, fsa, fsb);
    assert!(
        rms(&ws.0) < 1e-3 && rms(&ws.1) < 1e-3,
        "sound after parting: {}",
        rms(&ws.0)
    );

    // Bo heard Ann's tone and not his own.
    let wb = window(&rec_b, f4a, f2b);
    let ann = tone_both(&wb, 440.0);
    let own = tone_both(&wb, 1000.0);
    assert!(ann > 0.05 && own < ann / 100.0, "Bo: Ann {ann} own {own}");

    // The reports saw it all.
    let peer = &report_a.peers[&report_b.user_id];
    assert_eq!(peer.linked_at.len(), 1);
    assert_eq!(peer.unlinked_at.len(), 1);
    assert!(!peer.connected_at.is_empty());
    assert!(peer.packets > 100, "{} packets", peer.packets);
    assert!(!peer.first_audio_ms.is_empty());
    let voice = report_b.voice.unwrap();
    assert!(voice.packets_sent > 100);
}

#[test]
fn a_meeting_room_joins_the_inside_and_excludes_the_outside() {
    let server = Server::start(false);
    let (a_out, b_out, c_out) = (
        server.path("a.wav"),
        server.path("b.wav"),
        server.path("c.wav"),
    );
    // Ann and Bo in Meeting Room A, 8 tiles apart; Cy outside its wall,
    // 3 tiles from Bo.
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(2, 2), Some(&a_out));
    let b = voice_bot(&server, "Bo", 1000.0, TilePos::new(9, 6), Some(&b_out));
    let c = voice_bot(&server, "Cy", 700.0, TilePos::new(8, 9), Some(&c_out));
    assert!(a.wait_for(Duration::from_secs(5), |a| {
        a.connected().contains(&b.user_id)
    }));
    std::thread::sleep(Duration::from_millis(600));
    let (fa0, fa1) = record(&a, 2.0);
    let (fb0, fb1) = (
        b.output_frame().unwrap() - 96_000,
        b.output_frame().unwrap(),
    );
    let (fc0, fc1) = (
        c.output_frame().unwrap() - 96_000,
        c.output_frame().unwrap(),
    );
    assert!(
        c.peers().is_empty(),
        "Cy outside is linked to {:?}",
        c.peers()
    );
    assert_eq!(a.peers(), vec![b.user_id]);
    drop((a, b, c));

    let wa = window(&read_wav_stereo(&a_out).unwrap(), fa0, fa1);
    let wb = window(&read_wav_stereo(&b_out).unwrap(), fb0, fb1);
    let wc = window(&read_wav_stereo(&c_out).unwrap(), fc0, fc1);
    // Full volume in the room whatever the distance.
    let bo = tone_both(&wa, 1000.0);
    assert!(bo > 0.2, "Ann hears Bo at {bo}");
    let cy = tone_both(&wa, 700.0);
    assert!(cy < bo / 100.0, "Ann hears Cy: {cy}");
    let ann = tone_both(&wb, 440.0);
    assert!(ann > 0.2, "Bo hears Ann at {ann}");
    assert!(rms(&wc.0) < 1e-3 && rms(&wc.1) < 1e-3, "Cy hears the room");
}

#[test]
fn a_peer_that_vanishes_mid_call_is_cleaned_up() {
    let server = Server::start(false);
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), None);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hallway-bot"))
        .args(["--server", &server.addr, "--name", "Bo", "--path", "22,9"])
        .args([
            "--stay",
            "60",
            "--fake-mic",
            "tone:1000",
            "--audio-out",
            "none",
        ])
        .args(["--loopback-only"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let linked = a.wait_for(Duration::from_secs(20), |a| !a.connected().is_empty());
    if !linked {
        let _ = child.kill();
    }
    assert!(linked, "the bot process never connected");
    let bo = a.connected()[0];
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the closed socket and unlinks; the link is freed.
    assert!(a.wait_for(Duration::from_secs(10), |a| a.peers().is_empty()));
    assert!(a.wait_for(Duration::from_secs(10), |a| a.connected().is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    let report = a.stop();
    let peer = &report.peers[&bo.0];
    assert_eq!(peer.unlinked_at.len(), 1);
}

#[test]
fn no_microphone_or_speaker_is_not_a_crash() {
    let server = Server::start(false);
    let talker = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), None);
    // Devices that do not exist on any machine: the bot says so and carries on.
    let deviceless = Bot::start(BotOptions {
        voice: Some(CallOptions {
            mic: MicSpec::Named("No Such Microphone".into()),
            speaker: SpeakerSpec::Named("No Such Speaker".into()),
            rtc: RtcOptions {
                loopback_only: true,
                ..RtcOptions::default()
            },
            ..CallOptions::default()
        }),
        start_at: Some(TilePos::new(22, 9)),
        ..BotOptions::new(&server.addr, "Bo")
    })
    .unwrap();
    assert!(deviceless.wait_for(Duration::from_secs(10), |b| {
        b.connected().contains(&talker.user_id)
    }));
    // Still receiving and mixing (to nowhere), and telling why it is silent.
    assert!(deviceless.wait_for(Duration::from_secs(10), |b| {
        b.report()
            .peers
            .get(&talker.user_id.0)
            .is_some_and(|p| p.packets > 20)
    }));
    let voice = deviceless.report().voice.unwrap();
    let mic_error = voice.microphone_error.unwrap_or_default();
    let out_error = voice.output_error.unwrap_or_default();
    assert!(mic_error.contains("listening only"), "{mic_error}");
    assert!(out_error.contains("can talk but not hear"), "{out_error}");
    assert_eq!(voice.packets_sent, 0);
}

/// A hand-written peer on the raw protocol (no WebRTC stack): what a Hallway
/// offerer sends, and that a `restart` makes it offer a new connection.
#[test]
fn offers_follow_the_protocol_and_restart_brings_a_new_session() {
    use hallway_client::core::api::Api;
    use hallway_client::core::net::{self, NetEvent};
    use hallway_shared::protocol::{ClientMessage, ServerMessage};
    let server = Server::start(false);
    // Ann joins first, so she has the lower id and offers.
    let ann = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), None);
    let api = Api::new(&server.addr);
    let auth = server.rt.block_on(api.guest("Raw")).unwrap();
    assert!(auth.user.id > ann.user_id);
    let raw = net::spawn(server.rt.handle(), api.ws_url(), auth.token);
    raw.send(ClientMessage::Join {
        space_id: ann.space_id,
        x: Some(22),
        y: Some(9),
        instance: None,
    });
    let next_offer = || -> (String, u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some(NetEvent::Message(msg)) = raw.recv_timeout(Duration::from_millis(100))
                && let ServerMessage::Signal { from, payload } = *msg
                && from == ann.user_id
                && payload["kind"] == "offer"
            {
                let sdp = payload["sdp"].as_str().unwrap().to_owned();
                return (sdp, payload["session"].as_u64().unwrap());
            }
        }
        panic!("no offer");
    };
    let (sdp, first) = next_offer();
    assert!(sdp.contains("\r\n"), "SDP lines end in CRLF");
    assert!(sdp.contains("m=audio"));
    assert!(sdp.to_lowercase().contains("opus/48000/2"));
    assert!(sdp.contains("useinbandfec=1") && sdp.contains("usedtx=1"));
    // Video is offered from the start, camera on or off (protocol.md 6.4).
    let video = &sdp[sdp.find("m=video").expect("a video m-section")..];
    assert!(sdp.find("m=audio") < sdp.find("m=video"), "audio first");
    assert!(video.contains("a=rtpmap:125 H264/90000"));
    assert!(video.contains(
        "a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    ));
    assert!(video.contains("a=rtcp-fb:125 nack pli") && video.contains("a=rtcp-fb:125 ccm fir"));
    assert!(video.contains("a=sendrecv"));
    assert_fingerprints_per_section(&sdp);
    assert!(first < 1 << 53, "session fits a JSON number");
    // "My side failed, start over": Ann offers again with a new session.
    raw.send(ClientMessage::Signal {
        to: ann.user_id,
        payload: serde_json::json!({"kind": "restart", "session": first}),
    });
    let (_, second) = next_offer();
    assert_ne!(first, second);
    // A stale restart (old session) changes nothing: no third offer.
    raw.send(ClientMessage::Signal {
        to: ann.user_id,
        payload: serde_json::json!({"kind": "restart", "session": first}),
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if let Some(NetEvent::Message(msg)) = raw.recv_timeout(Duration::from_millis(100))
            && let ServerMessage::Signal { payload, .. } = *msg
        {
            assert_ne!(payload["kind"], "offer", "offered again on a stale restart");
        }
    }
}

/// One `a=fingerprint` in every m-section and none at session level
/// (protocol.md 6.4).
fn assert_fingerprints_per_section(sdp: &str) {
    let mut sections = sdp.split("\r\nm=");
    let session = sections.next().unwrap_or_default();
    assert!(
        !session.contains("a=fingerprint"),
        "session level: {session}"
    );
    let mut n = 0;
    for section in sections {
        assert_eq!(
            section.matches("a=fingerprint:sha-256 ").count(),
            1,
            "m={section}"
        );
        n += 1;
    }
    assert_eq!(n, 2, "audio and video");
}

/// The lines of the m-section that starts with `m=<kind>`.
fn section<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    let start = sdp.find(&format!("m={kind}")).expect("the m-section");
    let rest = &sdp[start..];
    let end = rest[2..].find("\r\nm=").map_or(rest.len(), |i| i + 2);
    rest[..end].lines().map(str::trim_end).collect()
}

/// A hand-written offerer whose offer has no Opus fmtp and asks for NACK and
/// REMB (as some stacks do): the Hallway answer states its own format
/// parameters and feedback under the offer's payload types, not the offer's.
#[test]
fn answers_state_hallways_own_codecs_whatever_the_offer_says() {
    use hallway_client::core::api::Api;
    use hallway_client::core::net::{self, NetEvent};
    use hallway_shared::protocol::{ClientMessage, ServerMessage};
    let server = Server::start(false);
    // The raw peer joins first: the lower id offers.
    let api = Api::new(&server.addr);
    let auth = server.rt.block_on(api.guest("Raw")).unwrap();
    let api = api.with_token(auth.token.clone());
    let space = server.rt.block_on(api.spaces()).unwrap()[0].id;
    let raw = net::spawn(server.rt.handle(), api.ws_url(), auth.token.clone());
    raw.send(ClientMessage::Join {
        space_id: space,
        x: Some(22),
        y: Some(9),
        instance: None,
    });
    let bo = voice_bot(&server, "Bo", 440.0, TilePos::new(20, 9), None);
    assert!(auth.user.id < bo.user_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut offered = false;
    let mut mids = Vec::new();
    let answer = loop {
        assert!(std::time::Instant::now() < deadline, "no answer");
        let Some(NetEvent::Message(msg)) = raw.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        match *msg {
            ServerMessage::Proximity { peers }
                if !offered && peers.iter().any(|p| p.user_id == bo.user_id) =>
            {
                let fingerprint = (0..32)
                    .map(|i| format!("{i:02X}"))
                    .collect::<Vec<_>>()
                    .join(":");
                let offer = [
                    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE a v",
                    &format!("a=fingerprint:sha-256 {fingerprint}"),
                    "m=audio 9 UDP/TLS/RTP/SAVPF 109", "c=IN IP4 0.0.0.0",
                    "a=ice-ufrag:rawpeer", "a=ice-pwd:rawpeerpasswordrawpeerpass",
                    "a=setup:actpass", "a=mid:a", "a=sendrecv", "a=rtcp-mux",
                    "a=rtpmap:109 opus/48000/2", "a=rtcp-fb:109 nack", "a=rtcp-fb:109 goog-remb",
                    "a=ssrc:1111 cname:raw",
                    "m=video 9 UDP/TLS/RTP/SAVPF 102", "c=IN IP4 0.0.0.0",
                    "a=ice-ufrag:rawpeer", "a=ice-pwd:rawpeerpasswordrawpeerpass",
                    "a=setup:actpass", "a=mid:v", "a=sendrecv", "a=rtcp-mux",
                    "a=rtpmap:102 H264/90000",
                    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                    "a=rtcp-fb:102 nack", "a=rtcp-fb:102 goog-remb", "a=rtcp-fb:102 transport-cc",
                    "a=ssrc:2222 cname:raw", "",
                ]
                .join("\r\n");
                raw.send(ClientMessage::Signal {
                    to: bo.user_id,
                    payload: serde_json::json!({"kind": "offer", "sdp": offer, "session": 77}),
                });
                offered = true;
            }
            ServerMessage::Signal { from, payload }
                if from == bo.user_id && payload["kind"] == "answer" =>
            {
                assert_eq!(payload["session"], 77);
                break payload["sdp"].as_str().unwrap().to_owned();
            }
            ServerMessage::Signal { from, payload }
                if from == bo.user_id && payload["kind"] == "candidate" =>
            {
                mids.push(payload["sdp_mid"].clone());
            }
            _ => {}
        }
    };
    // Candidates gathered for the answer are trickled after it.
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        if let Some(NetEvent::Message(msg)) = raw.recv_timeout(Duration::from_millis(50))
            && let ServerMessage::Signal { from, payload } = *msg
            && from == bo.user_id
            && payload["kind"] == "candidate"
        {
            mids.push(payload["sdp_mid"].clone());
        }
    }
    // They name the offer's first m-section, which the answer keeps.
    assert!(!mids.is_empty(), "candidates are trickled");
    assert!(mids.iter().all(|m| m == "a"), "{mids:?}");
    assert!(answer.contains("a=mid:a\r\n") && answer.contains("a=mid:v\r\n"));
    let audio = section(&answer, "audio");
    assert!(audio.contains(&"a=rtpmap:109 opus/48000/2"), "{audio:?}");
    assert!(
        audio.contains(&"a=fmtp:109 minptime=10;useinbandfec=1;usedtx=1;maxaveragebitrate=56000"),
        "{audio:?}"
    );
    assert!(
        !audio.iter().any(|l| l.starts_with("a=rtcp-fb:")),
        "{audio:?}"
    );
    let video = section(&answer, "video");
    assert!(video.contains(&"a=rtpmap:102 H264/90000"), "{video:?}");
    assert!(video.contains(&"a=rtcp-fb:102 nack pli") && video.contains(&"a=rtcp-fb:102 ccm fir"));
    assert!(
        !video.contains(&"a=rtcp-fb:102 nack"),
        "plain NACK echoed: {video:?}"
    );
    assert!(
        !answer.contains("goog-remb") && !answer.contains("transport-cc"),
        "{answer}"
    );
    assert_fingerprints_per_section(&answer);
}

/// CPU seconds used so far by this process's thread named `name`.
fn thread_cpu_seconds(name: &str) -> Option<f64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the ")" that ends the name: utime and stime are 12th and 13th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        return Some(ticks / 100.0);
    }
    None
}

/// A bot without a call waits on its channels instead of spinning (a
/// channel whose sender is gone is always ready to a `select!`).
#[test]
fn an_idle_bot_without_a_call_sleeps() {
    let server = Server::start(false);
    let bot = Bot::start(BotOptions::new(&server.addr, "Idle")).unwrap();
    let before = thread_cpu_seconds("bot Idle").expect("the bot's thread");
    std::thread::sleep(Duration::from_secs(2));
    let used = thread_cpu_seconds("bot Idle").expect("the bot's thread") - before;
    assert!(used < 0.5, "the idle bot used {used:.2} s of CPU in 2 s");
    drop(bot);
}

/// The fake room (`--fake-room`) goes through the real pipeline: Bo's
/// microphone also hears what his speaker plays, so Ann gets her own tone
/// back from him, as from a laptop without headphones. Without the room,
/// none of it comes back. (What echo cancellation must remove, issue 12.)
#[test]
fn a_fake_room_sends_a_peers_voice_back_as_echo() {
    let server = Server::start(false);
    let mut echo = Vec::new();
    for (i, room) in [None, Some("delay=80,gain=0.5")].into_iter().enumerate() {
        let out = server.path(&format!("ann-{i}.wav"));
        let ann = voice_bot(
            &server,
            &format!("Ann{i}"),
            440.0,
            TilePos::new(20, 9),
            Some(&out),
        );
        let mut options = CallOptions::fakes(
            MicSpec::Tone(660.0),
            SpeakerSpec::None,
            hallway_client::media::video::camera::CameraSpec::None,
        );
        options.room = room.map(|r| RoomSpec::parse(r).unwrap());
        let bo = Bot::start(BotOptions {
            voice: Some(options),
            start_at: Some(TilePos::new(21, 9)),
            ..BotOptions::new(&server.addr, &format!("Bo{i}"))
        })
        .unwrap();
        assert!(ann.wait_for(Duration::from_secs(10), |a| {
            a.connected().contains(&bo.user_id)
        }));
        std::thread::sleep(Duration::from_millis(1500));
        let (from, to) = record(&ann, 2.0);
        drop(bo);
        drop(ann);
        std::thread::sleep(Duration::from_millis(300));
        let rec = read_wav_stereo(&out).unwrap();
        let w = window(&rec, from, to);
        let (own, peer) = (tone_both(&w, 440.0), tone_both(&w, 660.0));
        assert!(peer > 0.05, "Ann hears Bo: {peer}");
        echo.push(own / peer);
    }
    let (without, with) = (echo[0], echo[1]);
    eprintln!("own tone / peer tone at Ann: {without:.4} without a room, {with:.3} in it");
    // Without a room Ann's own tone is nowhere in what she hears; in it, it
    // comes back at about half Bo's level (gain 0.5 on what he plays).
    assert!(without < 0.01, "echo without a room: {without}");
    assert!((0.1..=1.0).contains(&with), "echo in the room: {with}");
}
