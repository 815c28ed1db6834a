//! The local camera, Bevy-free: one thread opens the camera (nokhwa: V4L2 on
//! Linux, Media Foundation on Windows, AVFoundation on macOS) or the fake
//! test pattern, fits each picture to the size the call needs, keeps the
//! latest one as the preview and encodes it (H.264) for the peer
//! connections. The camera object lives and dies on that thread (nokhwa's
//! `Camera` is not `Send`); everything else talks to it through
//! [`CameraControl`] and a command channel.
//!
//! Size and frame rate follow the number of connected peers ([`tier_for`]):
//! every peer gets its own copy of the stream, so the upload stays near
//! 2 Mbit/s however many people stand around.

mod native;

pub use native::cameras;

use crate::media::device::sleep_until;
use crate::media::video::{EncodedVideo, Stamp, VideoEncoder, VideoFrame, fit, test_pattern};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use native::NativeCamera;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which camera to use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CameraSpec {
    /// The first camera the system lists.
    #[default]
    Default,
    /// A camera by the name [`cameras`] gives.
    Named(String),
    /// The fake camera: a moving test pattern with its [`Stamp`] drawn in.
    Pattern,
    /// No camera at all.
    None,
}

impl CameraSpec {
    /// Parses `--fake-camera`'s value (only `pattern` so far).
    pub fn parse_fake(s: &str) -> Result<CameraSpec, CameraError> {
        match s {
            "pattern" => Ok(CameraSpec::Pattern),
            other => Err(CameraError::UnknownFake(other.to_owned())),
        }
    }
}

/// Why there is no picture.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("unknown fake camera {0:?} (the fake camera is \"pattern\")")]
    UnknownFake(String),
    #[error("no camera selected")]
    NoneSelected,
    #[error("no camera found")]
    NoCamera,
    #[error("camera {0:?} not found")]
    NotFound(String),
    #[error("cannot list cameras: {0}")]
    List(#[source] nokhwa::NokhwaError),
    #[error("camera {camera}: {source}")]
    Camera {
        camera: String,
        #[source]
        source: nokhwa::NokhwaError,
    },
    #[error("{camera}: unexpected {format} picture of {bytes} bytes at {width}×{height}")]
    Picture {
        camera: String,
        format: String,
        bytes: usize,
        width: usize,
        height: usize,
    },
}

/// A size, frame rate and bitrate for the outgoing video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Target bits per second.
    pub bitrate: u32,
}

/// The outgoing video for `peers` connected peers: 640×480 at 30 fps for one
/// or two, 480×360 at 20 for three or four, 320×240 at 15 beyond that.
pub fn tier_for(peers: usize) -> Tier {
    match peers {
        0..=2 => Tier {
            width: 640,
            height: 480,
            fps: 30,
            bitrate: 800_000,
        },
        3..=4 => Tier {
            width: 480,
            height: 360,
            fps: 20,
            bitrate: 500_000,
        },
        _ => Tier {
            width: 320,
            height: 240,
            fps: 15,
            bitrate: 300_000,
        },
    }
}

/// Shared between the camera thread, the peer manager and the UI.
#[derive(Default)]
pub struct CameraControl {
    /// The user's camera switch.
    pub on: AtomicBool,
    /// A peer asked for a keyframe (joined, or lost one).
    pub keyframe: AtomicBool,
    /// Connected peers: sets the [`Tier`]; nothing is encoded with none.
    pub peers: AtomicUsize,
    pub frames_captured: AtomicU64,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub keyframes_sent: AtomicU64,
    state: Mutex<CameraState>,
}

#[derive(Default)]
struct CameraState {
    device: Option<String>,
    error: Option<String>,
    tier: Option<Tier>,
    /// The latest picture and its sequence number.
    preview: Option<(u64, Arc<VideoFrame>)>,
    preview_seq: u64,
}

/// A snapshot of the camera for the UI and reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CameraStats {
    pub on: bool,
    /// The open camera's name.
    pub device: Option<String>,
    /// Why there is no picture (no camera, it failed, ...).
    pub error: Option<String>,
    /// What is being sent now.
    pub tier: Option<Tier>,
    pub frames_captured: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub keyframes_sent: u64,
}

impl CameraControl {
    fn with_state(&self, f: impl FnOnce(&mut CameraState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    pub fn stats(&self) -> CameraStats {
        let (device, error, tier) = self
            .state
            .lock()
            .map(|s| (s.device.clone(), s.error.clone(), s.tier))
            .unwrap_or_default();
        CameraStats {
            on: self.on.load(Ordering::Relaxed),
            device,
            error,
            tier,
            frames_captured: self.frames_captured.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            keyframes_sent: self.keyframes_sent.load(Ordering::Relaxed),
        }
    }

    /// The latest picture (what the peers see) and its sequence number, which
    /// changes with every new picture; `None` while the camera is off.
    pub fn preview(&self) -> Option<(u64, Arc<VideoFrame>)> {
        self.state.lock().ok()?.preview.clone()
    }
}

enum Command {
    Set(CameraSpec),
    Stop,
}

/// The camera thread.
pub struct Camera {
    pub control: Arc<CameraControl>,
    commands: Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Disconnects when the thread ends.
    done: Receiver<()>,
}

impl Camera {
    /// Starts the thread; it opens `spec` once the camera is switched on and
    /// sends encoded pictures to `out` while peers are connected.
    pub fn start(
        spec: CameraSpec,
        on: bool,
        out: tokio::sync::mpsc::Sender<EncodedVideo>,
    ) -> Camera {
        let control = Arc::new(CameraControl::default());
        control.on.store(on, Ordering::Relaxed);
        let (commands, rx) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let c = control.clone();
        let thread = std::thread::Builder::new()
            .name("hallway-camera".into())
            .spawn(move || {
                let _done = done_tx;
                run(spec, &c, &rx, &out);
            })
            .ok();
        Camera {
            control,
            commands,
            thread,
            done,
        }
    }

    pub fn set_on(&self, on: bool) {
        self.control.on.store(on, Ordering::Relaxed);
    }

    pub fn set_camera(&self, spec: CameraSpec) {
        let _ = self.commands.send(Command::Set(spec));
    }

    pub fn stats(&self) -> CameraStats {
        self.control.stats()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        // A stalled camera can block its thread in the driver for good:
        // wait a moment, then leave it (it ends when the driver returns).
        if let Err(crossbeam_channel::RecvTimeoutError::Disconnected) =
            self.done.recv_timeout(Duration::from_secs(1))
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// Where pictures come from.
pub(super) trait FrameSource {
    /// The next picture, no sooner than `tier.fps` allows.
    fn next_frame(&mut self, tier: Tier) -> Result<VideoFrame, CameraError>;
    fn name(&self) -> String;
}

/// How long to wait before trying a camera that failed to open again (it
/// may be plugged in, or freed by another program, meanwhile).
const REOPEN_AFTER: Duration = Duration::from_secs(3);
/// Forced keyframes at most this often (every peer's PLI forces one for all).
const KEYFRAME_GAP: Duration = Duration::from_millis(300);

fn run(
    mut spec: CameraSpec,
    control: &CameraControl,
    commands: &Receiver<Command>,
    out: &tokio::sync::mpsc::Sender<EncodedVideo>,
) {
    let mut source: Option<Box<dyn FrameSource>> = None;
    let mut encoder: Option<(Tier, VideoEncoder)> = None;
    let mut retry_at: Option<Instant> = None;
    let mut last_key: Option<Instant> = None;
    // A picture could not be queued: the next one must not depend on it.
    let mut lost = false;
    // When the last picture sent was captured (its duration runs to the next).
    let mut last_capture: Option<Instant> = None;
    loop {
        let on = control.on.load(Ordering::Relaxed) && spec != CameraSpec::None;
        let idle = !on || retry_at.is_some_and(|t| Instant::now() < t);
        let command = if idle {
            match commands.recv_timeout(Duration::from_millis(100)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            commands.try_recv().ok()
        };
        match command {
            Some(Command::Stop) => break,
            Some(Command::Set(s)) => {
                spec = s;
                source = None;
                retry_at = None;
                control.with_state(|st| st.error = None);
                continue;
            }
            None => {}
        }
        if !on {
            // Both go: a camera switched on again starts with a keyframe.
            let had_source = source.take().is_some();
            let had_encoder = encoder.take().is_some();
            last_capture = None;
            if had_source || had_encoder {
                control.with_state(|st| {
                    st.device = None;
                    st.preview = None;
                    st.tier = None;
                });
            }
            if spec == CameraSpec::None {
                control.with_state(|st| st.error = Some("camera turned off in settings".into()));
            }
            continue;
        }
        if idle {
            continue;
        }
        let src = match source.as_mut() {
            Some(s) => s,
            None => match open(&spec) {
                Ok(s) => {
                    let name = s.name();
                    control.with_state(|st| {
                        st.device = Some(name);
                        st.error = None;
                    });
                    source.insert(s)
                }
                Err(e) => {
                    tracing::warn!("camera: {e}");
                    control.with_state(|st| st.error = Some(e.to_string()));
                    retry_at = Some(Instant::now() + REOPEN_AFTER);
                    continue;
                }
            },
        };
        let peers = control.peers.load(Ordering::Relaxed);
        let tier = tier_for(peers);
        let frame = match src.next_frame(tier) {
            Ok(f) => fit(f, tier.width, tier.height),
            Err(e) => {
                tracing::warn!("camera: {e}");
                control.with_state(|st| {
                    st.error = Some(e.to_string());
                    st.preview = None;
                });
                source = None;
                retry_at = Some(Instant::now() + REOPEN_AFTER);
                continue;
            }
        };
        let captured = Instant::now();
        control.frames_captured.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(frame);
        control.with_state(|st| {
            st.preview_seq += 1;
            st.preview = Some((st.preview_seq, frame.clone()));
        });
        if peers == 0 {
            encoder = None;
            last_capture = None;
            control.with_state(|st| st.tier = None);
            continue;
        }
        if encoder.as_ref().is_none_or(|(t, _)| *t != tier) {
            match VideoEncoder::new(tier.bitrate, tier.fps as f32) {
                Ok(e) => encoder = Some((tier, e)),
                Err(e) => {
                    control.with_state(|st| st.error = Some(e.to_string()));
                    continue;
                }
            }
            control.with_state(|st| {
                st.tier = Some(tier);
                st.error = None;
            });
        }
        let Some((_, enc)) = encoder.as_mut() else {
            continue;
        };
        if std::mem::take(&mut lost) {
            enc.request_keyframe();
            last_key = Some(Instant::now());
        }
        if control.keyframe.swap(false, Ordering::Relaxed) {
            if last_key.is_none_or(|t| t.elapsed() >= KEYFRAME_GAP) {
                enc.request_keyframe();
                last_key = Some(Instant::now());
            } else {
                control.keyframe.store(true, Ordering::Relaxed);
            }
        }
        let mut au = match enc.encode(&frame) {
            Ok(au) => au,
            Err(e) => {
                tracing::warn!("encoding video: {e}");
                continue;
            }
        };
        // The RTP clock follows capture: each picture lasts until the next
        // one (estimated by the last interval; cameras slow down in the dark).
        if let Some(prev) = last_capture.replace(captured) {
            au.duration = captured
                .duration_since(prev)
                .clamp(Duration::from_millis(5), Duration::from_secs(1));
        }
        let (bytes, key) = (au.data.len() as u64, au.keyframe);
        match out.try_send(au) {
            // A picture the rate control skipped sends nothing but still
            // moves the RTP clock.
            Ok(()) if bytes == 0 => {}
            Ok(()) => {
                control.frames_sent.fetch_add(1, Ordering::Relaxed);
                control.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                if key {
                    control.keyframes_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => lost = bytes > 0,
        }
    }
}

fn open(spec: &CameraSpec) -> Result<Box<dyn FrameSource>, CameraError> {
    match spec {
        CameraSpec::Pattern => Ok(Box::new(PatternSource::new())),
        CameraSpec::Default => NativeCamera::open(None).map(|c| Box::new(c) as _),
        CameraSpec::Named(name) => NativeCamera::open(Some(name)).map(|c| Box::new(c) as _),
        CameraSpec::None => Err(CameraError::NoneSelected),
    }
}

/// The fake camera: [`test_pattern`] at the tier's size and rate, each
/// picture stamped with its number and the time it was made.
struct PatternSource {
    frame: u64,
    due: Instant,
}

impl PatternSource {
    fn new() -> PatternSource {
        PatternSource {
            frame: 0,
            due: Instant::now(),
        }
    }
}

impl FrameSource for PatternSource {
    fn next_frame(&mut self, tier: Tier) -> Result<VideoFrame, CameraError> {
        sleep_until(self.due);
        let now = Instant::now();
        let period = Duration::from_secs(1) / tier.fps.max(1);
        // Keep to the schedule, but do not race to catch up after a stall.
        self.due = (self.due + period).max(now);
        let frame = test_pattern(Stamp::now(self.frame), tier.width, tier.height);
        self.frame += 1;
        Ok(frame)
    }

    fn name(&self) -> String {
        "Test pattern".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next encoded picture within `timeout`, from a thread with no runtime.
    fn recv_within(
        rx: &mut tokio::sync::mpsc::Receiver<EncodedVideo>,
        timeout: Duration,
    ) -> Result<EncodedVideo, ()> {
        let deadline = Instant::now() + timeout;
        loop {
            match rx.try_recv() {
                Ok(v) => return Ok(v),
                Err(_) if Instant::now() >= deadline => return Err(()),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    use crate::media::video::{VideoDecoder, read_stamp};

    #[test]
    fn the_tier_follows_the_peer_count() {
        assert_eq!((tier_for(1).width, tier_for(1).fps), (640, 30));
        assert_eq!(tier_for(2), tier_for(0));
        assert_eq!((tier_for(3).width, tier_for(4).fps), (480, 20));
        assert_eq!(
            (tier_for(5).width, tier_for(5).height, tier_for(9).fps),
            (320, 240, 15)
        );
        assert!(CameraSpec::parse_fake("pattern").is_ok());
        assert!(CameraSpec::parse_fake("webcam").is_err());
    }

    fn wait(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn the_fake_camera_previews_and_encodes_only_for_peers() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let camera = Camera::start(CameraSpec::Pattern, false, tx);
        std::thread::sleep(Duration::from_millis(150));
        assert!(camera.control.preview().is_none(), "off by default");
        camera.set_on(true);
        assert!(wait(|| camera.control.preview().is_some()));
        assert!(rx.try_recv().is_err(), "nothing encoded without peers");
        camera.control.peers.store(1, Ordering::Relaxed);
        let first = recv_within(&mut rx, Duration::from_secs(5)).unwrap();
        assert!(first.keyframe);
        let mut dec = VideoDecoder::new().unwrap();
        let got = dec.decode(&first.data).unwrap().unwrap();
        assert_eq!((got.width, got.height), (640, 480));
        assert!(read_stamp(&got).age_ms() < 2000);
        // Many peers: smaller pictures, and a requested keyframe comes.
        camera.control.peers.store(6, Ordering::Relaxed);
        camera.control.keyframe.store(true, Ordering::Relaxed);
        let small = (0..60)
            .filter_map(|_| recv_within(&mut rx, Duration::from_secs(2)).ok())
            .find_map(|au| {
                dec.decode(&au.data)
                    .ok()
                    .flatten()
                    .filter(|f| f.width == 320)
            });
        assert_eq!(small.map(|f| f.height), Some(240));
        assert_eq!(camera.stats().tier, Some(tier_for(6)));
        camera.set_on(false);
        assert!(wait(|| camera.control.preview().is_none()));
    }

    #[test]
    fn a_missing_camera_is_reported_not_fatal() {
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let camera = Camera::start(CameraSpec::Named("No Such Camera".into()), true, tx);
        assert!(wait(|| camera.stats().error.is_some()));
        let error = camera.stats().error.unwrap_or_default();
        assert!(
            error.contains("not found") || error.contains("no camera"),
            "{error}"
        );
        // Switching to a working camera recovers.
        camera.set_camera(CameraSpec::Pattern);
        assert!(wait(|| camera.control.preview().is_some()));
        assert_eq!(camera.stats().device.as_deref(), Some("Test pattern"));
        assert_eq!(camera.stats().error, None);
    }
}
