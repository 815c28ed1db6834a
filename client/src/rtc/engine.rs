//! How Hallway's peer connections are set up: the codecs with the payload
//! types, fmtp and feedback of protocol.md §6.4, the ICE settings, and the
//! offer/answer helpers that make the SDP carry what §6.4 promises.

use super::RtcOptions;
use std::time::Duration;
use webrtc::api::API;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};

/// Dynamic payload type we offer for Opus (answers may choose another).
pub const OPUS_PT: u8 = 111;
/// The SDP format parameters of §6.4.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;usedtx=1;maxaveragebitrate=56000";
/// Dynamic payload type we offer for H.264 (webrtc-rs's own for this fmtp).
pub const H264_PT: u8 = 125;
/// Constrained Baseline, non-interleaved packetization (§6.4).
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// How long an offer or answer waits for local candidates to be gathered,
/// so that the SDP carries them; later ones trickle.
const GATHER_WAIT: Duration = Duration::from_millis(250);

pub fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn h264_capability() -> RTCRtpCodecCapability {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![feedback("nack", "pli"), feedback("ccm", "fir")],
    }
}

pub fn build_api(options: &RtcOptions) -> Result<API, webrtc::Error> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            capability: opus_capability(),
            payload_type: OPUS_PT,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            capability: h264_capability(),
            payload_type: H264_PT,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    let registry = configure_rtcp_reports(Registry::new());
    let mut settings = SettingEngine::default();
    // Same-machine peers (and tests) need loopback candidates; mDNS names
    // would need a resolver on the LAN; IPv4 UDP is what every peer has.
    settings.set_include_loopback_candidate(true);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    // One fingerprint in each m-section (as browsers write it), none at
    // session level: what §6.4 documents.
    settings.set_sdp_media_level_fingerprints(true);
    let loopback_only = options.loopback_only;
    settings.set_ip_filter(Box::new(move |ip| {
        ip.is_ipv4() && (!loopback_only || ip.is_loopback())
    }));
    // How long the controlling agent waits for a better kind of pair before
    // it takes a reflexive or relayed one (webrtc-rs waits 0.5, 1 and 2 s).
    // Through a relay, the 2 s were most of both the first connection's and
    // an ICE restart's time (measured in client/tests/nat.rs); a direct pair
    // that works answers its checks within a round trip or two.
    settings.set_srflx_acceptance_min_wait(Some(Duration::from_millis(300)));
    settings.set_prflx_acceptance_min_wait(Some(Duration::from_millis(500)));
    settings.set_relay_acceptance_min_wait(Some(Duration::from_millis(500)));
    // Notice a broken path within 1.5 s (then ICE restarts, and a call is
    // back about 2.2 s after its path broke: client/tests/nat.rs); a
    // keepalive every half second (with media at 50 packets a second) keeps
    // a live link from looking broken, and the NAT's mapping warm.
    settings.set_ice_timeouts(
        Some(Duration::from_millis(1500)),
        Some(Duration::from_secs(8)),
        Some(Duration::from_millis(500)),
    );
    Ok(webrtc::api::APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// Makes the answer state Hallway's own fmtp and feedback (§6.4) instead of
/// echoing the offer's: webrtc-rs answers with the remote's parameters for a
/// matched codec, so an offer without an Opus fmtp would get an answer
/// without one (and no bitrate cap), and an offer with `nack`/`goog-remb`
/// would get them back. Call on the answerer, after the remote offer is set.
/// Payload type 0 lets webrtc-rs keep the number the offer chose.
pub async fn prefer_own_codecs(pc: &RTCPeerConnection) {
    for transceiver in pc.get_transceivers().await {
        let capability = match transceiver.kind() {
            RTPCodecType::Audio => opus_capability(),
            RTPCodecType::Video => h264_capability(),
            RTPCodecType::Unspecified => continue,
        };
        let own = RTCRtpCodecParameters {
            capability,
            payload_type: 0,
            ..Default::default()
        };
        // An offer without our format: the answer fails as it would anyway.
        if let Err(e) = transceiver.set_codec_preferences(vec![own]).await {
            tracing::debug!("codec preferences: {e}");
        }
    }
}

/// Sets `desc` as the local description and returns its SDP once the local
/// candidates are in it (or after [`GATHER_WAIT`]). Candidates in the SDP let
/// both ICE agents start checking at once; with trickle alone the first
/// checks often found no pairs and connecting took a second (measured).
pub async fn describe(
    pc: &RTCPeerConnection,
    desc: RTCSessionDescription,
) -> Result<String, webrtc::Error> {
    let mut gathered = pc.gathering_complete_promise().await;
    let fallback = desc.sdp.clone();
    pc.set_local_description(desc).await?;
    let _ = tokio::time::timeout(GATHER_WAIT, gathered.recv()).await;
    Ok(pc.local_description().await.map_or(fallback, |d| d.sdp))
}

/// The `mid` of the first m-section of `sdp` (where webrtc-rs puts its
/// candidates), `"0"` if there is none.
pub fn first_mid(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .unwrap_or("0")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_mid_is_found() {
        let sdp =
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio\r\nm=video 9 x\r\na=mid:v\r\n";
        assert_eq!(first_mid(sdp), "audio");
        assert_eq!(first_mid("v=0\r\n"), "0");
    }
}
