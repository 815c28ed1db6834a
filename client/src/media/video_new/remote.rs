//! Other people's video, Bevy-free: one thread decodes every peer's H.264
//! access units (a decoder per peer and connection) and keeps each peer's
//! latest picture for the UI. A decoder that cannot show a picture (it
//! joined between keyframes, or packets were lost) raises the flag that
//! makes the peer manager send a PLI (RTCP picture loss indication).

use crate::media::video::{VideoDecoder, VideoFrame};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hallway_shared::UserId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A peer whose last picture is older than this has stopped sending (camera
/// off, or gone): the UI shows the avatar instead.
pub const STALE_AFTER: Duration = Duration::from_millis(1500);

/// What the peer manager hands the decode thread.
pub enum VideoInput {
    /// One access unit (Annex-B) from `peer`'s connection `session`.
    Unit {
        peer: UserId,
        session: u64,
        data: Vec<u8>,
        /// Set when this decoder needs a keyframe.
        keyframe_wanted: Arc<AtomicBool>,
    },
    /// The link `session` ended: free the decoder and the picture, and
    /// ignore units of that session still on their way.
    Remove { peer: UserId, session: u64 },
}

/// Pictures larger than this are refused (a peer's stream, not a camera's
/// limit: textures and memory must stay bounded).
pub const MAX_PICTURE: (usize, usize) = (1920, 1088);

/// A cloneable sender that never blocks (a full queue drops the unit, which
/// the decoder then reports as a loss).
#[derive(Clone)]
pub struct VideoSender(Sender<VideoInput>);

impl VideoSender {
    pub fn send(&self, input: VideoInput) {
        match self.0.try_send(input) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(VideoInput::Unit {
                keyframe_wanted, ..
            })) => keyframe_wanted.store(true, Ordering::Relaxed),
            Err(TrySendError::Full(remove @ VideoInput::Remove { .. })) => {
                // Removals must not be lost; this is rare enough to block.
                let _ = self.0.send(remove);
            }
        }
    }
}

/// A peer's current video.
#[derive(Clone, Debug)]
pub struct RemoteVideo {
    pub frame: Arc<VideoFrame>,
    /// Changes with every new picture.
    pub seq: u64,
    pub first_at: Instant,
    pub last_at: Instant,
    /// Pictures decoded on this link.
    pub frames: u64,
    /// Access units and bytes received on this link.
    pub units: u64,
    pub bytes: u64,
    /// Access units that could not be decoded.
    pub errors: u64,
}

impl RemoteVideo {
    /// Is the picture current (the peer is still sending)?
    pub fn live(&self) -> bool {
        self.last_at.elapsed() < STALE_AFTER
    }

    /// Mean pictures per second on this link.
    pub fn fps(&self) -> f64 {
        let span = self.last_at.duration_since(self.first_at).as_secs_f64();
        if self.frames < 2 || span <= 0.0 {
            0.0
        } else {
            (self.frames - 1) as f64 / span
        }
    }
}

/// Every decoded picture with its peer and when it was decoded, for tests
/// and benchmarks that must see them all.
pub type FrameTap = Sender<(UserId, Arc<VideoFrame>, Instant)>;

/// The decode thread and the peers' latest pictures.
pub struct RemoteVideos {
    tx: Sender<VideoInput>,
    store: Arc<Mutex<HashMap<UserId, RemoteVideo>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RemoteVideos {
    pub fn start(tap: Option<FrameTap>) -> RemoteVideos {
        let (tx, rx) = crossbeam_channel::bounded(256);
        let store = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (store.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("hallway-video-in".into())
            .spawn(move || decode_loop(&rx, &s, &st, tap.as_ref()))
            .ok();
        RemoteVideos {
            tx,
            store,
            stop,
            thread,
        }
    }

    pub fn sender(&self) -> VideoSender {
        VideoSender(self.tx.clone())
    }

    /// `peer`'s latest picture and counters, if they have sent any on the
    /// current link.
    pub fn get(&self, peer: UserId) -> Option<RemoteVideo> {
        self.store.lock().ok()?.get(&peer).cloned()
    }

    /// Every peer with video on the current link.
    pub fn all(&self) -> Vec<(UserId, RemoteVideo)> {
        let mut v: Vec<_> = self
            .store
            .lock()
            .map(|s| s.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

impl Drop for RemoteVideos {
    fn drop(&mut self) {
        // Peer connections closing elsewhere may still hold senders.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct PeerDecoder {
    session: u64,
    decoder: VideoDecoder,
    shown: bool,
}

fn decode_loop(
    rx: &Receiver<VideoInput>,
    store: &Mutex<HashMap<UserId, RemoteVideo>>,
    stop: &AtomicBool,
    tap: Option<&FrameTap>,
) {
    let mut decoders: HashMap<UserId, PeerDecoder> = HashMap::new();
    // The last session removed per peer: its late units are dropped.
    let mut removed: HashMap<UserId, u64> = HashMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let input = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(input) => input,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let (peer, session, data, keyframe_wanted) = match input {
            VideoInput::Remove { peer, session } => {
                removed.insert(peer, session);
                decoders.remove(&peer);
                if let Ok(mut s) = store.lock() {
                    s.remove(&peer);
                }
                continue;
            }
            VideoInput::Unit {
                peer,
                session,
                data,
                keyframe_wanted,
            } => (peer, session, data, keyframe_wanted),
        };
        if removed.get(&peer) == Some(&session) {
            continue;
        }
        if decoders.get(&peer).is_none_or(|d| d.session != session) {
            match VideoDecoder::new() {
                Ok(decoder) => {
                    decoders.insert(
                        peer,
                        PeerDecoder {
                            session,
                            decoder,
                            shown: false,
                        },
                    );
                    if let Ok(mut s) = store.lock() {
                        s.remove(&peer);
                    }
                }
                Err(e) => {
                    tracing::warn!("video decoder: {e}");
                    continue;
                }
            }
        }
        let Some(d) = decoders.get_mut(&peer) else {
            continue;
        };
        let result = d.decoder.decode(&data);
        let now = Instant::now();
        let Ok(mut s) = store.lock() else { break };
        let picture = match result {
            Ok(Some(frame)) if frame.width > MAX_PICTURE.0 || frame.height > MAX_PICTURE.1 => {
                tracing::debug!(
                    "video from {peer:?}: {}×{} is too large",
                    frame.width,
                    frame.height
                );
                if let Some(v) = s.get_mut(&peer) {
                    v.errors += 1;
                }
                None
            }
            Ok(Some(frame)) => {
                d.shown = true;
                Some(Arc::new(frame))
            }
            Ok(None) => {
                if !d.shown {
                    keyframe_wanted.store(true, Ordering::Relaxed);
                }
                None
            }
            Err(e) => {
                tracing::debug!("video from {peer:?}: {e}");
                keyframe_wanted.store(true, Ordering::Relaxed);
                if let Some(v) = s.get_mut(&peer) {
                    v.errors += 1;
                }
                None
            }
        };
        let Some(frame) = picture else {
            if let Some(v) = s.get_mut(&peer) {
                v.units += 1;
                v.bytes += data.len() as u64;
            }
            continue;
        };
        seq += 1;
        let entry = s.entry(peer).or_insert_with(|| RemoteVideo {
            frame: frame.clone(),
            seq,
            first_at: now,
            last_at: now,
            frames: 0,
            units: 0,
            bytes: 0,
            errors: 0,
        });
        entry.frame = frame.clone();
        entry.seq = seq;
        entry.last_at = now;
        entry.frames += 1;
        entry.units += 1;
        entry.bytes += data.len() as u64;
        drop(s);
        if let Some(tap) = tap {
            let _ = tap.try_send((peer, frame, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::{Stamp, VideoEncoder, read_stamp, test_pattern};

    #[test]
    fn pictures_are_decoded_per_peer_and_losses_ask_for_keyframes() {
        let (tap_tx, tap) = crossbeam_channel::unbounded();
        let videos = RemoteVideos::start(Some(tap_tx));
        let tx = videos.sender();
        let mut enc = VideoEncoder::new(300_000, 15.0).unwrap();
        let units: Vec<_> = (0..6u16)
            .map(|n| {
                let stamp = Stamp {
                    frame: n,
                    clock_ms: n,
                };
                enc.encode(&test_pattern(stamp, 320, 240)).unwrap().data
            })
            .collect();
        let wanted = Arc::new(AtomicBool::new(false));
        let unit = |peer, session, data: &Vec<u8>| VideoInput::Unit {
            peer: UserId(peer),
            session,
            data: data.clone(),
            keyframe_wanted: wanted.clone(),
        };
        // Peer 2 joins late: without the keyframe nothing shows, and a
        // keyframe is asked for.
        tx.send(unit(2, 1, &units[3]));
        // Peer 1 gets everything.
        for u in &units {
            tx.send(unit(1, 1, u));
        }
        let mut got = Vec::new();
        while let Ok((peer, frame, _)) = tap.recv_timeout(Duration::from_secs(2)) {
            got.push((peer, read_stamp(&frame).frame));
            if got.len() == units.len() {
                break;
            }
        }
        assert_eq!(got, (0..6).map(|n| (UserId(1), n)).collect::<Vec<_>>());
        assert!(wanted.load(Ordering::Relaxed));
        let v = videos.get(UserId(1)).unwrap();
        assert_eq!((v.frames, v.units), (6, 6));
        assert!(v.live());
        assert!(videos.get(UserId(2)).is_none());
        // Garbage from a peer is counted, not fatal.
        tx.send(unit(1, 1, &vec![0, 0, 0, 1, 0x41, 0xff, 0x00, 0x12]));
        tx.send(VideoInput::Remove {
            peer: UserId(1),
            session: 1,
        });
        // A unit of the closed link still on its way brings nothing back.
        tx.send(unit(1, 1, &units[0]));
        let deadline = Instant::now() + Duration::from_secs(2);
        while videos.get(UserId(1)).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(videos.all().is_empty(), "a removed peer's picture is gone");
        // The next link (a new session) shows again.
        tx.send(unit(1, 2, &units[0]));
        let (peer, _, _) = tap.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(peer, UserId(1));
    }
}
