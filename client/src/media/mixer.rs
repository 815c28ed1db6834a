//! The receiving side: a thread that, every 10 ms, takes a tick's worth of
//! audio from each peer (decoding packets from its jitter buffer as needed,
//! with FEC or concealment for losses; a packet longer than a tick plays
//! over several), applies that peer's gain (distance curve × per-user
//! volume) and equal-power pan, mixes, and plays the result. Gains move to
//! their new values over one frame, so walking around never clicks. The
//! thread owns all per-peer state; everything else talks to it through a
//! channel.

use super::device::{NullSink, RecordingClock, Sink, SpeakerSpec, open_sink, open_wav};
use super::jitter::{JitterBuffer, JitterStats, Playout, Stretch};
use super::opus::{MAX_DECODED, VoiceDecoder, packet_samples};
use super::processing::EchoTap;
use super::room::RoomSpeaker;
use super::sounds::Sound;
use super::stretch::{self, ACCELERATE_NEEDS, HISTORY};
use super::{FRAME, MonoFrame, StereoFrame, frames, rms};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hallway_shared::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An RTP packet's Opus payload from `peer`'s connection number `session`.
/// Packets travel on a bounded queue that drops when full, as a network would.
#[derive(Debug)]
pub struct MixerPacket {
    pub peer: UserId,
    pub session: u64,
    /// RTP sequence number (a gap is a loss on the way).
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    pub arrival: Instant,
}

/// Orders for the mixer thread. They travel apart from packets, on a queue
/// that never drops: a burst of packets cannot lose a `Remove`.
#[derive(Debug)]
pub enum MixerControl {
    /// Where the peer is heard: `gain` from the distance curve, `pan` as
    /// (left, right) equal-power gains.
    Spatial {
        peer: UserId,
        gain: f32,
        pan: (f32, f32),
    },
    /// Per-user volume (1.0 = as is, up to 2.0).
    Volume {
        peer: UserId,
        volume: f32,
    },
    /// The peer's connection `session` is gone: free its decoder and buffers,
    /// and drop its packets still on the way.
    Remove {
        peer: UserId,
        session: u64,
    },
    /// Deafens people; sounds still play (they are Hallway's own, and the
    /// sounds setting turns them off).
    Deafen(bool),
    SetSpeaker(SpeakerSpec),
    /// Plays a notification sound once, mixed with the voices (and so heard
    /// by the echo canceller too). At most [`SOUNDS`] play at once; a new one
    /// ends the oldest.
    Play(Sound),
    Stop,
}

/// What the mixer knows about one peer's audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerAudioStats {
    pub packets: u64,
    pub bytes: u64,
    pub first_packet: Option<Instant>,
    /// First frame whose output (after gain) was above -60 dBFS.
    pub first_audible: Option<Instant>,
    /// Level of the last decoded frame before gain (0..1 RMS).
    pub level: f32,
    pub speaking: bool,
    /// Mean RMS this peer contributed to the left and right output channels.
    pub mean_out: (f32, f32),
    pub gain: f32,
    pub pan: (f32, f32),
    pub volume: f32,
    pub jitter: JitterStats,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MixerStats {
    pub device: Option<String>,
    pub error: Option<String>,
    pub frames: u64,
    pub peers: HashMap<UserId, PeerAudioStats>,
    /// E.g. that the speaker stopped and another took over.
    pub notice: Option<String>,
    /// Sounds started so far.
    pub sounds: u64,
}

/// Where the mixer's output goes besides the speaker.
#[derive(Default)]
pub struct MixerLinks {
    /// The echo canceller's far-end reference
    /// ([`super::processing::echo_reference`]).
    pub echo: Option<EchoTap>,
    /// A fake room's speaker end (see [`crate::media::room`]).
    pub room: Option<RoomSpeaker>,
    /// What takes over when the speaker stops mid-call (`None`: the
    /// system's default).
    pub fallback: Option<SpeakerSpec>,
}

/// A running mixer thread.
pub struct Mixer {
    tx: MixerSender,
    stats: Arc<Mutex<MixerStats>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set when the output is a WAV file: where the recording stands.
    pub recording: Option<RecordingClock>,
}

/// Packets waiting for the mixer (about 10 s of one peer).
const QUEUE: usize = 4096;
/// A peer is speaking for this many ticks after a loud one (300 ms).
const HANG: u32 = frames(300);
/// Stats are published every this many ticks (100 ms).
const PUBLISH: u64 = frames(100) as u64;
/// Sounds playing at once.
pub const SOUNDS: usize = 4;
/// Room for two of the longest packets: one stretched, or one and the next.
const DECODED: usize = 2 * MAX_DECODED;

impl Mixer {
    /// Starts mixing to `speaker`; everything played also goes to `links`.
    pub fn start(speaker: SpeakerSpec, links: MixerLinks) -> Mixer {
        let (packets, packet_rx) = crossbeam_channel::bounded(QUEUE);
        let (control, control_rx) = crossbeam_channel::unbounded();
        let tx = MixerSender { packets, control };
        let stats = Arc::new(Mutex::new(MixerStats::default()));
        let (clock_tx, clock_rx) = crossbeam_channel::bounded(1);
        let thread = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("hallway-mixer".into())
                .spawn(move || run(speaker, packet_rx, control_rx, stats, clock_tx, links))
                .ok()
        };
        let recording = clock_rx.recv_timeout(Duration::from_secs(5)).ok().flatten();
        Mixer {
            tx,
            stats,
            thread,
            recording,
        }
    }

    /// A sender for the tasks that receive RTP and the peer manager.
    pub fn sender(&self) -> MixerSender {
        self.tx.clone()
    }

    pub fn control(&self, cmd: MixerControl) {
        self.tx.control(cmd);
    }

    pub fn stats(&self) -> MixerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether `peer` is speaking now, without copying the stats (for
    /// systems that ask every frame).
    pub fn peer_speaking(&self, peer: UserId) -> bool {
        self.stats
            .lock()
            .is_ok_and(|s| s.peers.get(&peer).is_some_and(|p| p.speaking))
    }

    /// Why there is no sound, if there is none.
    pub fn error(&self) -> Option<String> {
        self.stats.lock().ok().and_then(|s| s.error.clone())
    }
}

impl Drop for Mixer {
    fn drop(&mut self) {
        self.tx.control(MixerControl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sending ends of the mixer's two queues; never blocks.
#[derive(Debug, Clone)]
pub struct MixerSender {
    packets: Sender<MixerPacket>,
    control: Sender<MixerControl>,
}

impl MixerSender {
    /// Queues a packet; a full queue drops it, as a network would.
    pub fn packet(&self, packet: MixerPacket) {
        match self.packets.try_send(packet) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("mixer queue full; dropping"),
        }
    }

    /// Queues an order; orders are never dropped.
    pub fn control(&self, cmd: MixerControl) {
        let _ = self.control.send(cmd);
    }
}

struct PeerMix {
    session: u64,
    jitter: JitterBuffer,
    decoder: Option<VoiceDecoder>,
    /// The last packet decoded (stretched, or two when speeding up), and
    /// how much of it has played.
    decoded: Box<[f32; DECODED]>,
    ready: std::ops::Range<usize>,
    /// The last samples played (before gain), for stretching.
    history: Box<[f32; HISTORY]>,
    /// Gains applied at the end of the last frame, and the ones wanted now.
    current: (f32, f32),
    spatial_gain: f32,
    pan: (f32, f32),
    volume: f32,
    hang: u32,
    sum_sq: (f64, f64),
    frames: u64,
    stats: PeerAudioStats,
}

impl PeerMix {
    fn new(now: Instant) -> PeerMix {
        PeerMix {
            session: 0,
            jitter: JitterBuffer::new(now),
            decoder: VoiceDecoder::new().ok(),
            decoded: Box::new([0.0; DECODED]),
            ready: 0..0,
            history: Box::new([0.0; HISTORY]),
            current: (0.0, 0.0),
            // Until told where the peer is, play it centred at full volume.
            spatial_gain: 1.0,
            pan: (
                std::f32::consts::FRAC_1_SQRT_2,
                std::f32::consts::FRAC_1_SQRT_2,
            ),
            volume: 1.0,
            hang: 0,
            sum_sq: (0.0, 0.0),
            frames: 0,
            stats: PeerAudioStats::default(),
        }
    }

    fn target(&self, deafened: bool) -> (f32, f32) {
        if deafened {
            return (0.0, 0.0);
        }
        let g = self.spatial_gain * self.volume;
        (g * self.pan.0, g * self.pan.1)
    }

    /// Fills `buf` with this tick's audio, decoding packets as it needs
    /// them; false if there is nothing to play.
    fn pull(&mut self, now: Instant, buf: &mut MonoFrame) -> bool {
        let Some(decoder) = self.decoder.as_mut() else {
            return false;
        };
        let mut filled = 0;
        while filled < FRAME {
            if self.ready.is_empty() {
                let playout = self.jitter.pop(now);
                let want = match playout {
                    // Stretching looks back on whole ticks played.
                    Playout::Packet(..) if filled == 0 => self.jitter.stretch(),
                    _ => Stretch::None,
                };
                let Some(mut n) = decode(decoder, playout, &mut self.decoded[..]) else {
                    break;
                };
                match want {
                    Stretch::None => {}
                    Stretch::Expand => {
                        if let Some(m) = stretch::expand(&self.history, &mut self.decoded[..], n) {
                            self.jitter.stretched(m as i64 - n as i64);
                            n = m;
                        }
                    }
                    Stretch::Accelerate => {
                        // One packet of ours is too short to take a long
                        // period out of: take the next too, if it is here.
                        if n < ACCELERATE_NEEDS
                            && self.jitter.next_is_here()
                            && let Some(more) = self
                                .decoded
                                .get_mut(n..)
                                .and_then(|rest| decode(decoder, self.jitter.pop(now), rest))
                        {
                            n += more;
                        }
                        if let Some(m) = stretch::accelerate(&mut self.decoded[..], n) {
                            self.jitter.stretched(m as i64 - n as i64);
                            n = m;
                        }
                    }
                }
                self.ready = 0..n.min(DECODED);
            }
            let take = self.ready.len().min(FRAME - filled);
            let from = self.ready.start;
            buf[filled..filled + take].copy_from_slice(&self.decoded[from..from + take]);
            self.ready.start += take;
            filled += take;
        }
        if filled == 0 {
            self.history.fill(0.0);
            return false;
        }
        buf[filled..].fill(0.0);
        self.history.copy_within(FRAME.., 0);
        self.history[HISTORY - FRAME..].copy_from_slice(buf);
        true
    }
}

/// Decodes what the jitter buffer said to play into `out`: how many samples
/// it gave, `None` for nothing (silence, or a decoder error).
fn decode(decoder: &mut VoiceDecoder, playout: Playout, out: &mut [f32]) -> Option<usize> {
    let result = match playout {
        Playout::Silence => return None,
        Playout::Packet(p, n) => decoder
            .decode(&p, out)
            // A packet that is not Opus: conceal rather than play garbage.
            .or_else(|_| decoder.conceal(n as usize, out)),
        Playout::Recover(p, n) => decoder
            .recover(&p, n as usize, out)
            .or_else(|_| decoder.conceal(n as usize, out)),
        Playout::Conceal(n) => decoder.conceal(n as usize, out),
    };
    result.ok().filter(|n| *n > 0).map(|n| n.min(out.len()))
}

fn run(
    speaker: SpeakerSpec,
    packets: Receiver<MixerPacket>,
    control: Receiver<MixerControl>,
    stats: Arc<Mutex<MixerStats>>,
    clock_tx: Sender<Option<RecordingClock>>,
    links: MixerLinks,
) {
    let MixerLinks {
        mut echo,
        mut room,
        fallback,
    } = links;
    let fallback = fallback.unwrap_or(SpeakerSpec::Default);
    let mut speaker = speaker;
    let (mut sink, _) = open_or_null(&speaker, &stats, &clock_tx);
    let mut peers: HashMap<UserId, PeerMix> = HashMap::new();
    // The last removed session of each peer: its packets still on the way
    // must not bring the peer back.
    let mut removed: HashMap<UserId, u64> = HashMap::new();
    let mut deafened = false;
    let mut buf: MonoFrame = [0.0; FRAME];
    let mut mix: StereoFrame = [0.0; FRAME * 2];
    let mut frames: u64 = 0;
    let mut retry_at: Option<Instant> = None;
    // Sounds playing, with where each stands (samples played).
    let mut sounds: Vec<(Sound, usize)> = Vec::with_capacity(SOUNDS);
    let mut sounds_started: u64 = 0;
    loop {
        if let Err(e) = sink.wait() {
            (sink, retry_at) = lost(&*sink, &e, &mut speaker, &fallback, &stats, &clock_tx);
        }
        let now = Instant::now();
        // Everything that arrived since the last tick: packets first, so that
        // an order given after a packet was queued applies to it.
        for p in packets.try_iter() {
            if removed.get(&p.peer) == Some(&p.session) {
                continue;
            }
            removed.remove(&p.peer);
            let mix = peers.entry(p.peer).or_insert_with(|| PeerMix::new(now));
            if p.session != mix.session {
                // A new connection to the same person: start afresh.
                mix.session = p.session;
                mix.jitter = JitterBuffer::new(now);
                mix.decoder = VoiceDecoder::new().ok();
                mix.ready = 0..0;
                mix.history.fill(0.0);
            }
            mix.stats.packets += 1;
            mix.stats.bytes += p.payload.len() as u64;
            mix.stats.first_packet.get_or_insert(p.arrival);
            mix.jitter.sequence(p.seq);
            // Not Opus: left out, so it counts as lost.
            if let Some(samples) = packet_samples(&p.payload) {
                mix.jitter.push(p.timestamp, p.payload, samples, p.arrival);
            }
        }
        loop {
            match control.try_recv() {
                Ok(MixerControl::Spatial { peer, gain, pan }) => {
                    let p = peers.entry(peer).or_insert_with(|| PeerMix::new(now));
                    p.spatial_gain = gain.clamp(0.0, 1.0);
                    p.pan = pan;
                }
                Ok(MixerControl::Volume { peer, volume }) => {
                    let p = peers.entry(peer).or_insert_with(|| PeerMix::new(now));
                    p.volume = volume.clamp(0.0, 2.0);
                }
                Ok(MixerControl::Remove { peer, session }) => {
                    peers.remove(&peer);
                    removed.insert(peer, session);
                }
                Ok(MixerControl::Deafen(d)) => deafened = d,
                Ok(MixerControl::SetSpeaker(s)) => {
                    speaker = s;
                    if let Ok(mut s) = stats.lock() {
                        s.notice = None;
                    }
                    (sink, _) = open_or_null(&speaker, &stats, &clock_tx);
                    retry_at = None;
                }
                Ok(MixerControl::Play(sound)) => {
                    if sounds.len() == SOUNDS {
                        sounds.remove(0);
                    }
                    sounds.push((sound, 0));
                    sounds_started += 1;
                }
                Ok(MixerControl::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    return;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
            }
        }
        if retry_at.is_some_and(|t| now >= t) {
            let opened;
            (sink, opened) = open_or_null(&speaker, &stats, &clock_tx);
            retry_at = (!opened).then(|| now + Duration::from_secs(3));
        }
        mix.fill(0.0);
        for p in peers.values_mut() {
            let (gl0, gr0) = p.current;
            let (gl1, gr1) = p.target(deafened);
            p.current = (gl1, gr1);
            if !p.pull(now, &mut buf) {
                p.stats.level = 0.0;
                p.hang = p.hang.saturating_sub(1);
                p.stats.speaking = p.hang > 0;
                p.frames += 1;
                continue;
            }
            let level = rms(&buf);
            p.stats.level = level;
            if level > 0.01 {
                p.hang = HANG;
            } else {
                p.hang = p.hang.saturating_sub(1);
            }
            p.stats.speaking = p.hang > 0;
            let (mut sl, mut sr) = (0.0f64, 0.0f64);
            for (i, s) in buf.iter().enumerate() {
                // Ramp over the frame from the old gains to the new ones.
                let t = (i + 1) as f32 / FRAME as f32;
                let l = s * (gl0 + (gl1 - gl0) * t);
                let r = s * (gr0 + (gr1 - gr0) * t);
                mix[2 * i] += l;
                mix[2 * i + 1] += r;
                sl += f64::from(l * l);
                sr += f64::from(r * r);
            }
            p.sum_sq.0 += sl;
            p.sum_sq.1 += sr;
            p.frames += 1;
            let out_rms = ((sl + sr) / (2 * FRAME) as f64).sqrt();
            if out_rms > 0.001 && p.stats.first_audible.is_none() {
                p.stats.first_audible = Some(now);
            }
        }
        for (sound, at) in &mut sounds {
            let rest = sound.get(*at..).unwrap_or_default();
            for (m, s) in mix.iter_mut().zip(rest) {
                *m += s;
            }
            *at += mix.len();
        }
        sounds.retain(|(sound, at)| *at < sound.len());
        for s in mix.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
        if let Err(e) = sink.write(&mix) {
            (sink, retry_at) = lost(&*sink, &e, &mut speaker, &fallback, &stats, &clock_tx);
        }
        if let Some(echo) = echo.as_mut() {
            echo.played(&mix);
        }
        if let Some(room) = room.as_mut() {
            room.played(&mix);
        }
        frames += 1;
        if frames.is_multiple_of(PUBLISH) {
            publish(&stats, frames, sounds_started, &peers);
        }
    }
}

fn publish(stats: &Mutex<MixerStats>, frames: u64, sounds: u64, peers: &HashMap<UserId, PeerMix>) {
    let Ok(mut s) = stats.lock() else { return };
    s.frames = frames;
    s.sounds = sounds;
    s.peers.clear();
    for (id, p) in peers {
        let n = (p.frames.max(1) * FRAME as u64) as f64;
        let mut ps = p.stats.clone();
        ps.mean_out = (
            (p.sum_sq.0 / n).sqrt() as f32,
            (p.sum_sq.1 / n).sqrt() as f32,
        );
        ps.gain = p.spatial_gain;
        ps.pan = p.pan;
        ps.volume = p.volume;
        ps.jitter = p.jitter.stats();
        s.peers.insert(*id, ps);
    }
}

/// Opens `speaker`, or silence if it cannot be opened (the stats say why);
/// true if it opened.
fn open_or_null(
    speaker: &SpeakerSpec,
    stats: &Mutex<MixerStats>,
    clock_tx: &Sender<Option<RecordingClock>>,
) -> (Box<dyn Sink>, bool) {
    // A file's recording clock goes to `Mixer::start` (the first one only).
    let opened = match open_wav(speaker) {
        Some(wav) => wav.map(|w| {
            let _ = clock_tx.try_send(Some(w.clock()));
            Box::new(w) as Box<dyn Sink>
        }),
        None => open_sink(speaker),
    };
    let _ = clock_tx.try_send(None);
    match opened {
        Ok(sink) => {
            if let Ok(mut s) = stats.lock() {
                s.device = Some(sink.name());
                s.error = None;
            }
            (sink, true)
        }
        Err(e) => (
            fallback(stats, &format!("{e}: you can talk but not hear")),
            false,
        ),
    }
}

/// The speaker failed mid-call: the fallback takes over (with a notice) and
/// the call goes on; if the fallback is what failed, silence, and another try
/// in 3 s. Returns the new sink and when to try again.
fn lost(
    failed: &dyn Sink,
    e: &super::MediaError,
    speaker: &mut SpeakerSpec,
    fallback_spec: &SpeakerSpec,
    stats: &Mutex<MixerStats>,
    clock_tx: &Sender<Option<RecordingClock>>,
) -> (Box<dyn Sink>, Option<Instant>) {
    let retry = Some(Instant::now() + Duration::from_secs(3));
    if speaker == fallback_spec {
        return (fallback(stats, &e.to_string()), retry);
    }
    let notice = format!(
        "{} stopped ({e}); now playing on {}",
        failed.name(),
        if *fallback_spec == SpeakerSpec::Default {
            "the default speaker"
        } else {
            "the fallback speaker"
        }
    );
    tracing::warn!("{notice}");
    if let Ok(mut s) = stats.lock() {
        s.notice = Some(notice);
    }
    speaker.clone_from(fallback_spec);
    let (sink, opened) = open_or_null(speaker, stats, clock_tx);
    (sink, if opened { None } else { retry })
}

fn fallback(stats: &Mutex<MixerStats>, error: &str) -> Box<dyn Sink> {
    tracing::warn!("audio output: {error}");
    if let Ok(mut s) = stats.lock() {
        s.device = None;
        s.error = Some(error.to_string());
    }
    Box::new(NullSink::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::opus::{OPUS_FRAME, VoiceEncoder};

    /// One packet's length in time.
    const PACKET: Duration = Duration::from_micros(OPUS_FRAME as u64 * 1_000_000 / 48_000);

    #[test]
    fn a_peer_is_mixed_with_its_gain_and_pan_and_freed_on_remove() {
        let mixer = Mixer::start(SpeakerSpec::None, MixerLinks::default());
        let peer = UserId(7);
        mixer.control(MixerControl::Spatial {
            peer,
            gain: 0.5,
            pan: hallway_shared::volume::stereo_pan(-3.0, 0.0),
        });
        let mut enc = VoiceEncoder::new().unwrap();
        let start = Instant::now();
        for k in 0..50u32 {
            let mut f = [0.0; OPUS_FRAME];
            for (i, s) in f.iter_mut().enumerate() {
                let n = k as usize * OPUS_FRAME + i;
                *s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 48_000.0).sin();
            }
            let payload = enc.encode(&f).unwrap().unwrap().to_vec();
            mixer.sender().packet(MixerPacket {
                peer,
                session: 1,
                seq: k as u16,
                timestamp: k * OPUS_FRAME as u32,
                payload,
                arrival: Instant::now(),
            });
            std::thread::sleep(PACKET);
        }
        std::thread::sleep(Duration::from_millis(200));
        let stats = mixer.stats();
        let p = &stats.peers[&peer];
        assert_eq!(p.packets, 50);
        assert!(p.first_audible.unwrap() >= start);
        let (l, r) = p.mean_out;
        assert!(l > r * 2.0, "left {l} right {r}");
        mixer.control(MixerControl::Remove { peer, session: 1 });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!mixer.stats().peers.contains_key(&peer));
    }

    /// A browser sends 20 ms packets, two of our ticks each: they play
    /// whole, without a gap between the halves or between packets.
    #[test]
    fn packets_longer_than_a_tick_play_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("out.wav");
        let mixer = Mixer::start(SpeakerSpec::Wav(wav.clone()), MixerLinks::default());
        let peer = UserId(3);
        let mut enc =
            ::opus::Encoder::new(48_000, ::opus::Channels::Mono, ::opus::Application::Voip)
                .unwrap();
        let mut out = [0u8; 1500];
        let start = Instant::now();
        for k in 0..40u32 {
            let mut f = [0.0f32; 960];
            for (i, s) in f.iter_mut().enumerate() {
                let n = k as usize * 960 + i;
                *s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 48_000.0).sin();
            }
            let len = enc.encode_float(&f, &mut out).unwrap();
            mixer.sender().packet(MixerPacket {
                peer,
                session: 1,
                seq: k as u16,
                timestamp: k * 960,
                payload: out[..len].to_vec(),
                arrival: Instant::now(),
            });
            crate::media::device::sleep_until(start + Duration::from_millis(20) * (k + 1));
        }
        std::thread::sleep(Duration::from_millis(100));
        let stats = mixer.stats();
        drop(mixer);
        // Only the end of the stream is concealed (60 ms, then silence).
        let jitter = stats.peers[&peer].jitter;
        assert_eq!((jitter.played, jitter.late), (40, 0), "{jitter:?}");
        let (l, _) = crate::media::device::read_wav_stereo(&wav).unwrap();
        // Every 5 ms from the first sound to 100 ms before the last packet
        // is the tone (0.3 × the centre pan, RMS ≈ 0.15).
        let start = l.iter().position(|s| s.abs() > 0.01).unwrap();
        let windows: Vec<f32> = l[start + 480..start + 960 * 35]
            .chunks_exact(240)
            .map(crate::media::rms)
            .collect();
        assert!(
            windows.iter().all(|r| (0.1..0.2).contains(r)),
            "{:?}",
            windows
                .iter()
                .map(|r| (r * 100.0).round())
                .collect::<Vec<_>>()
        );
    }

    /// A talker who never pauses, her packets 0 to 30 ms late throughout:
    /// the mixer stretches her voice a pitch period at a time, so the delay
    /// grows to the jitter buffer's target within the one talk spurt.
    #[test]
    fn a_jittered_spurt_is_stretched_to_the_target() {
        let mixer = Mixer::start(SpeakerSpec::None, MixerLinks::default());
        let peer = UserId(5);
        let mut enc = VoiceEncoder::new().unwrap();
        // A voiced sound: 150 Hz and two harmonics.
        let voiced = |n: usize| {
            let w = 2.0 * std::f32::consts::PI * 150.0 * n as f32 / 48_000.0;
            0.3 * w.sin() + 0.15 * (2.0 * w).sin() + 0.08 * (3.0 * w).sin()
        };
        let mut packets: Vec<(u64, u32, Vec<u8>)> = (0..300u32)
            .map(|k| {
                let f: [f32; OPUS_FRAME] =
                    std::array::from_fn(|i| voiced(k as usize * OPUS_FRAME + i));
                let payload = enc.encode(&f).unwrap().unwrap().to_vec();
                let late = (u64::from(k) * 7919 + 13) % 31;
                (u64::from(k) * 10 + late, k, payload)
            })
            .collect();
        packets.sort();
        let start = Instant::now();
        for (at, k, payload) in packets {
            crate::media::device::sleep_until(start + Duration::from_millis(at));
            mixer.sender().packet(MixerPacket {
                peer,
                session: 1,
                seq: k as u16,
                timestamp: k * OPUS_FRAME as u32,
                payload,
                arrival: Instant::now(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        let jitter = mixer.stats().peers[&peer].jitter;
        assert!(jitter.expanded >= 1, "{jitter:?}");
        assert!(jitter.delay_ms >= 25.0, "{jitter:?}");
    }

    /// A flood of packets fills the packet queue; the `Remove` behind it
    /// still lands, and the flood's stragglers do not bring the peer back.
    #[test]
    fn a_remove_behind_a_flood_of_packets_still_lands() {
        let mixer = Mixer::start(SpeakerSpec::None, MixerLinks::default());
        let sender = mixer.sender();
        let payload = VoiceEncoder::new()
            .unwrap()
            .encode(&[0.1; OPUS_FRAME])
            .unwrap()
            .unwrap()
            .to_vec();
        let send = |peer: UserId, session: u64, n: u32| {
            for k in 0..n {
                sender.packet(MixerPacket {
                    peer,
                    session,
                    seq: k as u16,
                    timestamp: k * OPUS_FRAME as u32,
                    payload: payload.clone(),
                    arrival: Instant::now(),
                });
            }
        };
        let (gone, kept) = (UserId(1), UserId(2));
        // Three queues' worth at once: the packet queue is full when the
        // order is given.
        send(gone, 7, 3 * QUEUE as u32);
        mixer.control(MixerControl::Remove {
            peer: gone,
            session: 7,
        });
        std::thread::sleep(Duration::from_millis(200));
        // Stragglers of the removed connection, and another peer.
        send(gone, 7, 20);
        send(kept, 3, 20);
        std::thread::sleep(Duration::from_millis(200));
        let peers = mixer.stats().peers;
        assert!(!peers.contains_key(&gone), "the remove was lost");
        assert!(peers.contains_key(&kept));
        // A new connection to the same peer is heard again.
        send(gone, 8, 20);
        std::thread::sleep(Duration::from_millis(200));
        assert!(mixer.stats().peers.contains_key(&gone));
    }

    #[test]
    fn sounds_are_mixed_in_once_and_a_failed_speaker_gives_way() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
        let mixer = Mixer::start(
            SpeakerSpec::FailingWav {
                path: first.clone(),
                fail: 0.6,
            },
            MixerLinks {
                fallback: Some(SpeakerSpec::Wav(second.clone())),
                ..MixerLinks::default()
            },
        );
        // 0.1 s of a constant 0.2, stereo.
        let sound: Sound = vec![0.2f32; 9600].into();
        mixer.control(MixerControl::Play(sound.clone()));
        std::thread::sleep(Duration::from_millis(1000));
        // More than can play at once: the oldest give way.
        for _ in 0..SOUNDS + 2 {
            mixer.control(MixerControl::Play(sound.clone()));
        }
        std::thread::sleep(Duration::from_millis(400));
        let stats = mixer.stats();
        drop(mixer);
        assert_eq!(stats.sounds, 1 + SOUNDS as u64 + 2);
        let notice = stats.notice.unwrap_or_default();
        assert!(notice.contains("a.wav stopped"), "{notice}");
        assert!(notice.contains("fallback speaker"), "{notice}");
        assert!(stats.device.unwrap_or_default().contains("b.wav"));
        let (l, r) = crate::media::device::read_wav_stereo(&first).unwrap();
        let loud = |x: &[f32], v: f32| x.iter().filter(|s| (**s - v).abs() < 0.01).count();
        // The first sound, once, on both sides: 4800 frames.
        assert_eq!(loud(&l, 0.2), 4800);
        assert_eq!(loud(&r, 0.2), 4800);
        // On the fallback: four at once (not six).
        let (l, _) = crate::media::device::read_wav_stereo(&second).unwrap();
        assert_eq!(loud(&l, 0.8), 4800, "{}", l.len());
    }
}
