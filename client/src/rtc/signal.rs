//! The signal payloads of protocol.md §6.2: what two peers send each other,
//! relayed opaquely by the server.

use serde::{Deserialize, Serialize};

/// A signal payload (protocol.md §6.2). `session` is Hallway's connection
/// number: a new one replaces the old connection with that peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalPayload {
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Answer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    EndOfCandidates {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Bye {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    /// From the answerer: "this connection failed, offer a new one".
    Restart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    /// From the answerer: "this connection's path broke, offer an ICE
    /// restart on it" (the offerer may not have noticed: a break can be one
    /// way).
    IceRestart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
}

/// A remote ICE candidate as a signal carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_payloads_match_the_protocol() {
        let c = SignalPayload::Candidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            session: Some(7),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["kind"], "candidate");
        assert_eq!(v["sdp_mid"], "0");
        assert_eq!(v["sdp_mline_index"], 0);
        assert_eq!(v["session"], 7);
        // A client that sends no session (another implementation) is understood.
        let offer: SignalPayload =
            serde_json::from_str(r#"{"kind":"offer","sdp":"v=0\r\n","extra":1}"#).unwrap();
        assert_eq!(
            offer,
            SignalPayload::Offer {
                sdp: "v=0\r\n".into(),
                session: None
            }
        );
        assert!(serde_json::from_str::<SignalPayload>(r#"{"kind":"wave"}"#).is_err());
    }
}
