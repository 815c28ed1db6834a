//! Media in and out of the peer connections. Out: one shared Opus track and
//! one shared H.264 track, fed from the capture and camera threads (encoded
//! once, whoever listens). In: each remote audio track's packets go straight
//! to the mixer, each video track's access units to the decoder.

use super::engine::OPUS_PT;
use super::h264::{Assembled, UnitAssembler};
use super::impair::{Fate, Impairer, Impairment};
use crate::media::capture::EncodedFrame;
use crate::media::mixer::{MixerPacket, MixerSender};
use crate::media::video::EncodedVideo;
use crate::media::video::camera::CameraControl;
use crate::media::video::remote::{VideoInput, VideoSender};
use hallway_shared::UserId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_remote::TrackRemote;

/// A receiver asks for a keyframe at most this often.
const PLI_GAP: Duration = Duration::from_millis(500);

/// Moves encoded frames from the capture thread onto the shared track: a
/// task on the runtime, awaiting them (no thread of its own).
pub fn spawn_uplink(
    rt: &tokio::runtime::Handle,
    mut uplink: tokio::sync::mpsc::Receiver<EncodedFrame>,
    track: Arc<TrackLocalStaticRTP>,
) {
    rt.spawn(async move {
        let mut seq: u16 = rand::random();
        while let Some(frame) = uplink.recv().await {
            let packet = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: frame.marker,
                    payload_type: OPUS_PT,
                    sequence_number: seq,
                    timestamp: frame.timestamp,
                    ..Default::default()
                },
                payload: frame.payload,
            };
            seq = seq.wrapping_add(1);
            // Errors name connections that are closing; the rest still got it.
            let _ = track.write_rtp(&packet).await;
        }
    });
}

/// Moves encoded pictures from the camera thread onto the shared video
/// track; it packetizes them (FU-A / STAP-A, RFC 6184) for every peer. An
/// empty one (skipped by the rate control) sends nothing but advances the
/// RTP timestamp, which keeps the clock in step with capture.
pub fn spawn_video_uplink(
    rt: &tokio::runtime::Handle,
    mut uplink: tokio::sync::mpsc::Receiver<EncodedVideo>,
    track: Arc<TrackLocalStaticSample>,
) {
    rt.spawn(async move {
        while let Some(au) = uplink.recv().await {
            let sample = webrtc::media::Sample {
                data: bytes::Bytes::from(au.data),
                duration: au.duration,
                ..Default::default()
            };
            // Errors name connections that are closing; the rest still got it.
            let _ = track.write_sample(&sample).await;
        }
    });
}

/// Where a connection's remote tracks go.
#[derive(Clone)]
pub struct Sinks {
    pub mixer: MixerSender,
    pub video: VideoSender,
    /// Loss and jitter on incoming voice (a test option).
    pub impair: Option<Impairment>,
}

/// Starts reading a remote track that just arrived on `peer`'s connection
/// `session`: Opus to the mixer, H.264 to the decoder, anything else ignored.
pub fn read_remote(
    track: Arc<TrackRemote>,
    pc: Weak<RTCPeerConnection>,
    peer: UserId,
    session: u64,
    sinks: Sinks,
) {
    let mime = track.codec().capability.mime_type;
    if mime.eq_ignore_ascii_case(MIME_TYPE_H264) {
        tokio::spawn(read_video(track, pc, peer, session, sinks.video));
    } else if mime.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
        let impairer = sinks.impair.map(Impairer::new);
        tokio::spawn(read_audio(track, peer, session, sinks.mixer, impairer));
    }
}

async fn read_audio(
    track: Arc<TrackRemote>,
    peer: UserId,
    session: u64,
    mixer: MixerSender,
    mut impairer: Option<Impairer>,
) {
    while let Ok((packet, _)) = track.read_rtp().await {
        if packet.payload.is_empty() || packet.payload.len() > crate::media::opus::MAX_PACKET {
            continue;
        }
        let fate = impairer
            .as_mut()
            .map_or(Fate::Deliver(Duration::ZERO), Impairer::fate);
        let packet = MixerPacket {
            peer,
            session,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            payload: packet.payload.to_vec(),
            arrival: Instant::now(),
        };
        match fate {
            Fate::Drop => {}
            Fate::Deliver(Duration::ZERO) => mixer.packet(packet),
            Fate::Deliver(delay) => {
                let mixer = mixer.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    mixer.packet(MixerPacket {
                        arrival: Instant::now(),
                        ..packet
                    });
                });
            }
        }
    }
}

/// Reads one peer's video track: rebuilds access units from the RTP packets
/// (a unit ends at the marker bit), drops units with a lost packet, hands
/// the rest to the decoder and sends a PLI when it wants a keyframe.
async fn read_video(
    track: Arc<TrackRemote>,
    pc: Weak<RTCPeerConnection>,
    peer: UserId,
    session: u64,
    out: VideoSender,
) {
    // Ask at once: the keyframe sent on connecting may have come before
    // this track was ready.
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let mut last_pli: Option<Instant> = None;
    let mut assembler = UnitAssembler::default();
    while let Ok((packet, _)) = track.read_rtp().await {
        match assembler.push(&packet) {
            Assembled::Pending => {}
            Assembled::Damaged => keyframe_wanted.store(true, Ordering::Relaxed),
            Assembled::Unit(data) => out.send(VideoInput::Unit {
                peer,
                session,
                data,
                keyframe_wanted: keyframe_wanted.clone(),
            }),
        }
        if keyframe_wanted.load(Ordering::Relaxed)
            && last_pli.is_none_or(|t| t.elapsed() >= PLI_GAP)
        {
            let Some(pc) = pc.upgrade() else { break };
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: track.ssrc(),
            };
            if pc.write_rtcp(&[Box::new(pli)]).await.is_ok() {
                keyframe_wanted.store(false, Ordering::Relaxed);
                last_pli = Some(Instant::now());
            }
        }
    }
}

/// Reads the microphone track's RTCP, so the interceptors work.
pub fn drain_rtcp(sender: Arc<RTCRtpSender>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while sender.read(&mut buf).await.is_ok() {}
    });
}

/// Reads the camera track's RTCP; a PLI or FIR asks the camera for a keyframe.
pub fn watch_keyframe_requests(sender: Arc<RTCRtpSender>, camera: Arc<CameraControl>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((packets, _)) = sender.read(&mut buf).await {
            let wants_keyframe = packets.iter().any(|p| {
                p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
            });
            if wants_keyframe {
                camera.keyframe.store(true, Ordering::Relaxed);
            }
        }
    });
}
