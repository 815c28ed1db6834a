//! The link table's rules, with invented times.
use super::*;

const ME: UserId = UserId(5);
/// A lower id than mine: it offers to me.
const LOW: UserId = UserId(2);
/// A higher id: I offer to it.
const HIGH: UserId = UserId(9);

fn timing() -> Timing {
    Timing {
        connect_timeout: Duration::from_secs(15),
        // 1 s, 2 s, 4 s, ... capped at 8 s: easy to read in tests.
        backoff: |n| Duration::from_secs(1u64 << n.saturating_sub(1).min(3)),
    }
}

/// A table whose sessions count 101, 102, ...
fn table() -> LinkTable {
    let mut next = 100;
    LinkTable::new(timing(), move || {
        next += 1;
        next
    })
}

fn peers(ids: &[UserId]) -> Vec<Peer> {
    ids.iter()
        .map(|&id| Peer {
            user_id: id,
            offerer: hallway_shared::proximity::is_offerer(ME, id),
        })
        .collect()
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

fn offer(session: u64) -> SignalPayload {
    SignalPayload::Offer {
        sdp: format!("offer {session}"),
        session: Some(session),
    }
}

fn candidate(n: u32, session: Option<u64>) -> SignalPayload {
    SignalPayload::Candidate {
        candidate: format!("candidate:{n}"),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        session,
    }
}

fn remote(n: u32) -> RemoteCandidate {
    RemoteCandidate {
        candidate: format!("candidate:{n}"),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

#[test]
fn the_offerer_offers_accepts_one_answer_and_flushes_candidates() {
    let t0 = Instant::now();
    let mut t = table();
    let a = t.set_peers(&peers(&[HIGH]), t0);
    assert_eq!(
        a,
        vec![Action::Offer {
            peer: HIGH,
            session: 101
        }]
    );
    // The same list again changes nothing.
    assert!(t.set_peers(&peers(&[HIGH]), t0).is_empty());
    // Candidates before the answer wait for it.
    assert!(t.on_signal(HIGH, candidate(1, Some(101)), t0).is_empty());
    let answer = |s| SignalPayload::Answer {
        sdp: "answer".into(),
        session: Some(s),
    };
    assert!(t.on_signal(HIGH, answer(77), t0).is_empty(), "stale answer");
    assert_eq!(
        t.on_signal(HIGH, answer(101), t0),
        vec![Action::Accept {
            peer: HIGH,
            session: 101,
            sdp: "answer".into()
        }]
    );
    assert_eq!(
        t.described(HIGH, 101),
        vec![Action::Candidate {
            peer: HIGH,
            session: 101,
            candidate: remote(1)
        }]
    );
    assert!(
        t.on_signal(HIGH, answer(101), t0).is_empty(),
        "second answer"
    );
    assert_eq!(
        t.on_signal(HIGH, candidate(2, None), t0),
        vec![Action::Candidate {
            peer: HIGH,
            session: 101,
            candidate: remote(2)
        }],
        "a candidate without a session is for the current one"
    );
    // An offer from a peer I offer to (glare) is not answered.
    assert!(t.on_signal(HIGH, offer(500), t0).is_empty());
}

#[test]
fn the_answerer_answers_only_peers_in_its_list() {
    let t0 = Instant::now();
    let mut t = table();
    assert!(
        t.on_signal(LOW, offer(40), t0).is_empty(),
        "not in the list"
    );
    assert!(
        t.set_peers(&peers(&[LOW]), t0).is_empty(),
        "LOW offers, not me"
    );
    assert!(t.on_signal(LOW, candidate(1, Some(40)), t0).is_empty());
    assert_eq!(
        t.on_signal(LOW, offer(40), t0),
        vec![Action::Answer {
            peer: LOW,
            session: 40,
            sdp: "offer 40".into(),
            open: true
        }]
    );
    // The early candidate had no link to wait on; later ones queue.
    assert!(t.on_signal(LOW, candidate(2, Some(40)), t0).is_empty());
    assert_eq!(
        t.described(LOW, 40),
        vec![Action::Candidate {
            peer: LOW,
            session: 40,
            candidate: remote(2)
        }]
    );
    assert!(t.described(LOW, 41).is_empty(), "another session");
}

#[test]
fn a_new_session_replaces_the_old_and_stale_signals_are_ignored() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(40), t0);
    t.described(LOW, 40);
    let a = t.on_signal(LOW, offer(41), secs(t0, 1.0));
    assert_eq!(
        a,
        vec![
            Action::Close {
                peer: LOW,
                session: 40,
                bye: false
            },
            Action::Event(RtcEvent::Closed(LOW)),
            Action::Answer {
                peer: LOW,
                session: 41,
                sdp: "offer 41".into(),
                open: true
            },
        ]
    );
    // The old session's late signals do nothing.
    assert!(t.on_signal(LOW, candidate(3, Some(40)), t0).is_empty());
    let bye_old = SignalPayload::Bye { session: Some(40) };
    assert!(t.on_signal(LOW, bye_old, t0).is_empty());
    assert!(t.on_state(LOW, 40, LinkState::Failed, t0).is_empty());
    // The same session offered again renegotiates on the same link.
    assert_eq!(
        t.on_signal(LOW, offer(41), t0),
        vec![Action::Answer {
            peer: LOW,
            session: 41,
            sdp: "offer 41".into(),
            open: false
        }]
    );
}

#[test]
fn failures_back_off_longer_each_time_and_success_resets() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[HIGH]), t0);
    // First failure: wait 1 s, then a new session.
    let a = t.on_state(HIGH, 101, LinkState::Failed, secs(t0, 2.0));
    assert_eq!(
        a,
        vec![
            Action::Event(RtcEvent::Failed(HIGH)),
            Action::Drop {
                peer: HIGH,
                session: 101,
                restart: false
            },
        ]
    );
    assert_eq!(t.info()[&HIGH].state, LinkState::Retrying);
    assert_eq!(t.info()[&HIGH].attempts, 1);
    assert_eq!(t.poll_timeout(), Some(secs(t0, 3.0)));
    // Failing again while retrying, or the closed pc's report, changes nothing.
    assert!(
        t.on_state(HIGH, 101, LinkState::Failed, secs(t0, 2.5))
            .is_empty()
    );
    assert!(
        t.on_state(HIGH, 101, LinkState::Closed, secs(t0, 2.5))
            .is_empty()
    );
    assert!(t.handle_timeout(secs(t0, 2.9)).is_empty());
    let a = t.handle_timeout(secs(t0, 3.0));
    assert_eq!(
        a,
        vec![Action::Offer {
            peer: HIGH,
            session: 102
        }]
    );
    // Second failure in a row: 2 s. Third: 4 s.
    t.failed(HIGH, 102, secs(t0, 4.0));
    assert_eq!(t.poll_timeout(), Some(secs(t0, 6.0)));
    assert_eq!(t.handle_timeout(secs(t0, 6.0)).len(), 1);
    t.on_state(HIGH, 103, LinkState::Failed, secs(t0, 7.0));
    assert_eq!(t.poll_timeout(), Some(secs(t0, 11.0)));
    t.handle_timeout(secs(t0, 11.0));
    // Connected: the count starts again, so the next failure waits 1 s.
    let a = t.on_state(HIGH, 104, LinkState::Connected, secs(t0, 12.0));
    assert_eq!(a, vec![Action::Event(RtcEvent::Connected(HIGH))]);
    assert_eq!(t.info()[&HIGH].attempts, 0);
    assert_eq!(t.info()[&HIGH].connected_at, Some(secs(t0, 12.0)));
    assert_eq!(t.connected(), 1);
    assert_eq!(t.poll_timeout(), None, "nothing to wait for while up");
    t.on_state(HIGH, 104, LinkState::Failed, secs(t0, 20.0));
    assert_eq!(t.poll_timeout(), Some(secs(t0, 21.0)));
    assert_eq!(t.connected(), 0);
    // The link dates from when the server linked us, across retries.
    assert_eq!(t.info()[&HIGH].linked_at, t0);
}

#[test]
fn a_connection_that_never_comes_up_is_started_over() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[HIGH]), t0);
    t.on_state(HIGH, 101, LinkState::Connecting, secs(t0, 0.1));
    assert_eq!(t.poll_timeout(), Some(secs(t0, 15.0)));
    assert!(t.handle_timeout(secs(t0, 14.9)).is_empty());
    let a = t.handle_timeout(secs(t0, 15.0));
    assert_eq!(a[0], Action::Event(RtcEvent::Failed(HIGH)));
    assert_eq!(
        t.handle_timeout(secs(t0, 16.0)),
        vec![Action::Offer {
            peer: HIGH,
            session: 102
        }]
    );
}

#[test]
fn the_answerer_asks_for_a_restart_and_the_offerer_honours_current_ones() {
    let t0 = Instant::now();
    // Answerer side: a failure sends `restart` and waits for a new offer.
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(40), t0);
    let a = t.on_state(LOW, 40, LinkState::Failed, secs(t0, 1.0));
    assert_eq!(
        a[1],
        Action::Drop {
            peer: LOW,
            session: 40,
            restart: true
        }
    );
    // The failed session offered again is not answered: it is closed.
    assert!(t.on_signal(LOW, offer(40), secs(t0, 1.5)).is_empty());
    // Its backoff ends without an offer of its own; the link is forgotten.
    assert!(t.handle_timeout(secs(t0, 2.0)).is_empty());
    assert!(t.info().is_empty());
    // The offerer's new offer opens a new link.
    let a = t.on_signal(LOW, offer(41), secs(t0, 2.1));
    assert!(matches!(
        a[..],
        [Action::Answer {
            session: 41,
            open: true,
            ..
        }]
    ));

    // Offerer side.
    let mut t = table();
    t.set_peers(&peers(&[HIGH]), t0);
    let restart = |s| SignalPayload::Restart { session: Some(s) };
    assert!(
        t.on_signal(HIGH, restart(7), t0).is_empty(),
        "stale restart"
    );
    let a = t.on_signal(HIGH, restart(101), t0);
    assert_eq!(
        a[1],
        Action::Drop {
            peer: HIGH,
            session: 101,
            restart: false
        }
    );
    assert_eq!(
        t.handle_timeout(secs(t0, 1.0)),
        vec![Action::Offer {
            peer: HIGH,
            session: 102
        }]
    );
    // A restart from the side that offers (a confused peer) is ignored.
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(40), t0);
    assert!(t.on_signal(LOW, restart(40), t0).is_empty());
}

#[test]
fn leaving_the_list_says_bye_and_late_signals_in_the_grace_period_open_nothing() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[HIGH, LOW]), t0);
    t.on_signal(LOW, offer(40), t0);
    let a = t.set_peers(&peers(&[LOW]), secs(t0, 1.0));
    assert_eq!(
        a,
        vec![
            Action::Close {
                peer: HIGH,
                session: 101,
                bye: true
            },
            Action::Event(RtcEvent::Closed(HIGH)),
        ]
    );
    // Within the server's grace HIGH may still signal: nothing reopens.
    let answer = SignalPayload::Answer {
        sdp: "late".into(),
        session: Some(101),
    };
    assert!(t.on_signal(HIGH, answer, secs(t0, 1.1)).is_empty());
    assert!(
        t.on_signal(HIGH, candidate(1, Some(101)), secs(t0, 1.1))
            .is_empty()
    );
    // A bye from a peer still in the list is from an earlier link.
    let bye = SignalPayload::Bye { session: None };
    assert!(t.on_signal(LOW, bye.clone(), secs(t0, 1.2)).is_empty());
    // Once LOW is out of the list too, its bye closes what is left.
    let mut t2 = table();
    t2.set_peers(&peers(&[LOW]), t0);
    t2.on_signal(LOW, offer(40), t0);
    t2.wanted.clear();
    assert_eq!(
        t2.on_signal(LOW, bye, t0)[0],
        Action::Close {
            peer: LOW,
            session: 40,
            bye: false
        }
    );
    // Back in the list later: a fresh link, with a fresh count.
    let a = t.set_peers(&peers(&[HIGH, LOW]), secs(t0, 5.0));
    assert_eq!(
        a,
        vec![Action::Offer {
            peer: HIGH,
            session: 102
        }]
    );
    assert_eq!(t.info()[&HIGH].linked_at, secs(t0, 5.0));
    assert_eq!(t.info()[&HIGH].attempts, 0);
}

#[test]
fn close_all_hangs_up_without_bye_and_forgets_the_list() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[HIGH, UserId(7)]), t0);
    let a = t.close_all();
    let closes: Vec<_> = a
        .iter()
        .filter(|a| matches!(a, Action::Close { bye: false, .. }))
        .collect();
    assert_eq!(closes.len(), 2);
    assert!(t.info().is_empty());
    assert_eq!(t.poll_timeout(), None);
    // An offer now is from nobody we want.
    assert!(t.on_signal(LOW, offer(1), t0).is_empty());
}

#[test]
fn candidates_queue_up_to_a_limit() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[HIGH]), t0);
    for n in 0..100 {
        t.on_signal(HIGH, candidate(n, Some(101)), t0);
    }
    assert_eq!(t.described(HIGH, 101).len(), MAX_PENDING_CANDIDATES);
}

/// The offerer's link to HIGH, answered and connected at `t0`.
fn connected_offerer(t0: Instant) -> LinkTable {
    let mut t = table();
    t.set_peers(&peers(&[HIGH]), t0);
    let answer = SignalPayload::Answer {
        sdp: "answer".into(),
        session: Some(101),
    };
    assert_eq!(t.on_signal(HIGH, answer, t0).len(), 1);
    t.described(HIGH, 101);
    t.on_state(HIGH, 101, LinkState::Connected, t0);
    t
}

#[test]
fn a_broken_path_is_restarted_in_place_by_the_offerer() {
    let t0 = Instant::now();
    let mut t = connected_offerer(t0);
    t.on_route(HIGH, 101, Route::Srflx);
    assert_eq!(t.info()[&HIGH].route, Some(Route::Srflx));
    // Disconnected: a probe of the WebSocket, and an ICE restart on the
    // same session, once.
    let a = t.on_state(HIGH, 101, LinkState::Disconnected, secs(t0, 10.0));
    assert_eq!(
        a,
        vec![
            Action::ProbeSignaling,
            Action::IceRestart {
                peer: HIGH,
                session: 101
            }
        ]
    );
    assert_eq!(
        t.on_state(HIGH, 101, LinkState::Disconnected, secs(t0, 10.1)),
        vec![Action::ProbeSignaling]
    );
    assert_eq!(t.info()[&HIGH].ice_restarts, 1);
    // The answerer asking too (it saw the break as well, or reconnected)
    // gets the unanswered offer again at once, and no second restart.
    let ask = SignalPayload::IceRestart { session: Some(101) };
    assert_eq!(
        t.on_signal(HIGH, ask, secs(t0, 10.0)),
        vec![Action::ResendOffer {
            peer: HIGH,
            session: 101
        }]
    );
    assert_eq!(t.info()[&HIGH].ice_restarts, 1);
    // Unanswered, the offer goes out again every half second.
    assert_eq!(t.poll_timeout(), Some(secs(t0, 10.5)));
    assert_eq!(
        t.handle_timeout(secs(t0, 10.5)),
        vec![Action::ResendOffer {
            peer: HIGH,
            session: 101
        }]
    );
    assert_eq!(t.poll_timeout(), Some(secs(t0, 11.0)));
    // Its answer is taken (a new remote description), candidates before it
    // wait, and the resending stops.
    assert!(
        t.on_signal(HIGH, candidate(7, Some(101)), secs(t0, 10.6))
            .is_empty()
    );
    let answer = SignalPayload::Answer {
        sdp: "restart answer".into(),
        session: Some(101),
    };
    assert_eq!(
        t.on_signal(HIGH, answer, secs(t0, 10.7)),
        vec![Action::Accept {
            peer: HIGH,
            session: 101,
            sdp: "restart answer".into()
        }]
    );
    assert_eq!(
        t.described(HIGH, 101),
        vec![Action::Candidate {
            peer: HIGH,
            session: 101,
            candidate: remote(7)
        }]
    );
    assert_eq!(t.poll_timeout(), Some(secs(t0, 25.0)));
    // Connected again: same session, the first connection time kept, no
    // failure counted; a later break restarts again.
    let a = t.on_state(HIGH, 101, LinkState::Connected, secs(t0, 11.0));
    assert_eq!(a, vec![Action::Event(RtcEvent::Connected(HIGH))]);
    let info = &t.info()[&HIGH];
    assert_eq!((info.session, info.attempts), (101, 0));
    assert_eq!(info.connected_at, Some(t0));
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(
        t.on_state(HIGH, 101, LinkState::Disconnected, secs(t0, 30.0)),
        vec![
            Action::ProbeSignaling,
            Action::IceRestart {
                peer: HIGH,
                session: 101
            }
        ]
    );
    assert_eq!(t.info()[&HIGH].ice_restarts, 2);
}

#[test]
fn a_restart_that_does_not_connect_in_time_starts_over() {
    let t0 = Instant::now();
    let mut t = connected_offerer(t0);
    t.on_state(HIGH, 101, LinkState::Disconnected, secs(t0, 10.0));
    // The offer went out again and again while nobody answered.
    let resent = (1..30)
        .map(|i| t.handle_timeout(secs(t0, 10.0 + f64::from(i) * 0.5)).len())
        .sum::<usize>();
    assert_eq!(resent, 29);
    let a = t.handle_timeout(secs(t0, 25.0));
    assert_eq!(
        a,
        vec![
            Action::ResendOffer {
                peer: HIGH,
                session: 101
            },
            Action::Event(RtcEvent::Failed(HIGH)),
            Action::Drop {
                peer: HIGH,
                session: 101,
                restart: false
            }
        ]
    );
    // After the backoff: a new connection with a new session.
    assert_eq!(
        t.handle_timeout(secs(t0, 26.0)),
        vec![Action::Offer {
            peer: HIGH,
            session: 102
        }]
    );
}

#[test]
fn the_answerer_waits_for_the_offerers_restart_and_answers_it() {
    let t0 = Instant::now();
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(7), t0);
    t.described(LOW, 7);
    t.on_state(LOW, 7, LinkState::Connected, t0);
    // Its own disconnect probes the WebSocket and asks the offerer to
    // restart (the break may be one way).
    assert_eq!(
        t.on_state(LOW, 7, LinkState::Disconnected, secs(t0, 5.0)),
        vec![
            Action::ProbeSignaling,
            Action::AskIceRestart {
                peer: LOW,
                session: 7
            }
        ]
    );
    assert_eq!(t.poll_timeout(), None);
    // The restart offer (same session) is answered on the open connection.
    assert_eq!(
        t.on_signal(LOW, offer(7), secs(t0, 5.1)),
        vec![Action::Answer {
            peer: LOW,
            session: 7,
            sdp: "offer 7".into(),
            open: false
        }]
    );
    let a = t.on_state(LOW, 7, LinkState::Connected, secs(t0, 5.5));
    assert_eq!(a, vec![Action::Event(RtcEvent::Connected(LOW))]);
    // A disconnect that never recovers still ends in failure (webrtc-rs
    // reports it failed), which asks the offerer for a new session.
    t.on_state(LOW, 7, LinkState::Disconnected, secs(t0, 9.0));
    let a = t.on_state(LOW, 7, LinkState::Failed, secs(t0, 15.0));
    assert!(a.contains(&Action::Drop {
        peer: LOW,
        session: 7,
        restart: true
    }));
}

#[test]
fn an_answerer_that_sees_a_one_way_break_gets_an_ice_restart() {
    let t0 = Instant::now();
    let mut t = connected_offerer(t0);
    // A stale session's request, or one before any connection, is ignored.
    let stale = SignalPayload::IceRestart { session: Some(99) };
    assert!(t.on_signal(HIGH, stale, secs(t0, 5.0)).is_empty());
    // Our side still hears the peer; the peer does not hear us.
    let ask = SignalPayload::IceRestart { session: Some(101) };
    assert_eq!(
        t.on_signal(HIGH, ask.clone(), secs(t0, 5.0)),
        vec![Action::IceRestart {
            peer: HIGH,
            session: 101
        }]
    );
    assert_eq!(t.info()[&HIGH].ice_restarts, 1);
    // Asked again while it runs: the same offer again, not a new restart.
    assert_eq!(
        t.on_signal(HIGH, ask, secs(t0, 5.2)),
        vec![Action::ResendOffer {
            peer: HIGH,
            session: 101
        }]
    );
    assert_eq!(t.info()[&HIGH].ice_restarts, 1);
    // A peer that is not the answerer of this link cannot ask.
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(7), t0);
    t.described(LOW, 7);
    t.on_state(LOW, 7, LinkState::Connected, t0);
    let ask = SignalPayload::IceRestart { session: Some(7) };
    assert!(t.on_signal(LOW, ask, secs(t0, 1.0)).is_empty());
}

#[test]
fn after_a_reconnect_broken_links_ask_again_and_unanswered_offers_go_again() {
    let t0 = Instant::now();
    // The offerer: its restart offer went into a dead WebSocket.
    let mut t = connected_offerer(t0);
    assert!(t.resumed(t0).is_empty(), "nothing broken, nothing to do");
    t.on_state(HIGH, 101, LinkState::Disconnected, secs(t0, 10.0));
    assert_eq!(
        t.resumed(secs(t0, 10.2)),
        vec![Action::ResendOffer {
            peer: HIGH,
            session: 101
        }]
    );
    // The next periodic resend is half a second after that one.
    assert_eq!(t.poll_timeout(), Some(secs(t0, 10.7)));
    // The answerer's ask after its own reconnect: the offer again at once.
    let ask = SignalPayload::IceRestart { session: Some(101) };
    assert_eq!(
        t.on_signal(HIGH, ask.clone(), secs(t0, 10.3)),
        vec![Action::ResendOffer {
            peer: HIGH,
            session: 101
        }]
    );
    // Once answered, neither asks nor reconnects resend anything.
    let answer = SignalPayload::Answer {
        sdp: "restart answer".into(),
        session: Some(101),
    };
    t.on_signal(HIGH, answer, secs(t0, 10.4));
    t.described(HIGH, 101);
    assert!(t.on_signal(HIGH, ask, secs(t0, 10.5)).is_empty());
    assert!(t.resumed(secs(t0, 10.6)).is_empty());

    // The answerer: its ask went into the dead WebSocket; it asks again.
    let mut t = table();
    t.set_peers(&peers(&[LOW]), t0);
    t.on_signal(LOW, offer(7), t0);
    t.described(LOW, 7);
    t.on_state(LOW, 7, LinkState::Connected, t0);
    assert!(t.resumed(t0).is_empty());
    t.on_state(LOW, 7, LinkState::Disconnected, secs(t0, 3.0));
    assert_eq!(
        t.resumed(secs(t0, 3.2)),
        vec![Action::AskIceRestart {
            peer: LOW,
            session: 7
        }]
    );
}
