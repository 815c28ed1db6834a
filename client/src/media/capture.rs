//! The sending side: a thread that reads 10 ms frames from the microphone (or
//! a fake), processes them (echo cancellation, noise suppression, automatic
//! gain: [`super::processing`]), detects speech, applies mute and push-to-talk,
//! encodes Opus (one packet per [`OPUS_FRAME`]) and hands each packet, with
//! its RTP timestamp, to whoever sends it (the WebRTC track). If the
//! microphone cannot be opened or stops, the thread says so in its stats and
//! keeps retrying every few seconds, so a microphone plugged in later starts
//! working.

use super::device::{MicSpec, open_source};
use super::opus::{OPUS_FRAME, OpusFrame, VoiceEncoder};
use super::processing::{EchoReference, ProcessingConfig, ProcessingStats, Processor};
use super::room::RoomMic;
use super::{FRAME, MonoFrame, frames, rms};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// One encoded frame, ready for RTP.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// RTP timestamp (48 kHz units) of the packet's first sample; advances
    /// by [`OPUS_FRAME`] per packet, also across packets not sent (DTX,
    /// mute), so receivers see the gap.
    pub timestamp: u32,
    /// True on the first packet after a gap (RTP marker bit).
    pub marker: bool,
    pub payload: bytes::Bytes,
    /// When the frame's last sample was captured.
    pub captured: Instant,
}

/// Switches the capture thread reads every frame.
#[derive(Debug, Default)]
pub struct CaptureControl {
    pub muted: AtomicBool,
    /// Push-to-talk mode: send only while `ptt_down`.
    pub push_to_talk: AtomicBool,
    pub ptt_down: AtomicBool,
    /// What processing runs ([`ProcessingConfig::to_bits`]).
    processing: AtomicU8,
    /// Level of the last frame before gating, in 1/1000 of full scale.
    pub level_milli: AtomicU32,
    pub speaking: AtomicBool,
    pub frames: AtomicU64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

impl CaptureControl {
    /// True when frames go out now.
    pub fn transmitting(&self) -> bool {
        !self.muted.load(Ordering::Relaxed)
            && (!self.push_to_talk.load(Ordering::Relaxed) || self.ptt_down.load(Ordering::Relaxed))
    }

    /// Changes the processing from the next frame on.
    pub fn set_processing(&self, config: ProcessingConfig) {
        self.processing.store(config.to_bits(), Ordering::Relaxed);
    }

    pub fn processing(&self) -> ProcessingConfig {
        ProcessingConfig::from_bits(self.processing.load(Ordering::Relaxed))
    }
}

/// What the capture side reports to the UI.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureStats {
    /// The device in use, or `None` with `error` saying why not.
    pub device: Option<String>,
    pub error: Option<String>,
    /// For a fake microphone: when its sample 0 was captured.
    pub source_started: Option<SystemTime>,
    /// Something the user should know that is not an error, e.g. that the
    /// chosen microphone went away and the default one took over.
    pub notice: Option<String>,
    pub processing: ProcessingStats,
}

enum Command {
    SetMic(MicSpec),
    Stop,
}

/// A running capture thread.
pub struct Capture {
    commands: Sender<Command>,
    pub control: Arc<CaptureControl>,
    stats: Arc<Mutex<CaptureStats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the capture thread works with besides the microphone.
#[derive(Default)]
pub struct CaptureLinks {
    /// The mixer's output, the echo canceller's far end
    /// ([`super::processing::echo_reference`]).
    pub reference: Option<EchoReference>,
    /// A fake room's microphone end: it also hears the speaker (see
    /// [`crate::media::room`]).
    pub room: Option<RoomMic>,
    /// What takes over when the microphone stops mid-call (`None`: the
    /// system's default; tests give a fake).
    pub fallback: Option<MicSpec>,
}

impl Capture {
    /// Starts capturing from `mic` with `processing` on it. Encoded frames
    /// go to `out`, a tokio channel so that the network side can await them
    /// on its runtime (sending never blocks: a full queue drops the frame).
    pub fn start(
        mic: MicSpec,
        processing: ProcessingConfig,
        out: tokio::sync::mpsc::Sender<EncodedFrame>,
        links: CaptureLinks,
    ) -> Capture {
        let (commands, rx) = crossbeam_channel::unbounded();
        let control = Arc::new(CaptureControl::default());
        control.set_processing(processing);
        let stats = Arc::new(Mutex::new(CaptureStats::default()));
        let thread = {
            let control = control.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("hallway-capture".into())
                .spawn(move || run(mic, rx, control, stats, out, links))
                .ok()
        };
        Capture {
            commands,
            control,
            stats,
            thread,
        }
    }

    pub fn set_mic(&self, mic: MicSpec) {
        let _ = self.commands.send(Command::SetMic(mic));
    }

    pub fn stats(&self) -> CaptureStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Voice activity: above about -40 dBFS after noise suppression (or RNNoise
/// says voice), held for 300 ms so words don't flicker.
struct Vad {
    hang: u32,
}

impl Vad {
    fn update(&mut self, level: f32, voice_probability: Option<f32>) -> bool {
        let active = match voice_probability {
            Some(p) => p > 0.6 && level > 0.003,
            None => level > 0.01,
        };
        if active {
            self.hang = frames(300);
        } else {
            self.hang = self.hang.saturating_sub(1);
        }
        self.hang > 0
    }
}

fn set_status(stats: &Mutex<CaptureStats>, device: Option<String>, error: Option<String>) {
    if let Ok(mut s) = stats.lock() {
        s.device = device;
        s.error = error;
    }
}

fn run(
    mut mic: MicSpec,
    commands: Receiver<Command>,
    control: Arc<CaptureControl>,
    stats: Arc<Mutex<CaptureStats>>,
    out: tokio::sync::mpsc::Sender<EncodedFrame>,
    links: CaptureLinks,
) {
    let CaptureLinks {
        reference,
        mut room,
        fallback,
    } = links;
    let fallback = fallback.unwrap_or(MicSpec::Default);
    let mut encoder = match VoiceEncoder::new() {
        Ok(e) => e,
        Err(e) => {
            set_status(&stats, None, Some(e.to_string()));
            return;
        }
    };
    let mut processor = Processor::new(control.processing(), reference);
    let mut vad = Vad { hang: 0 };
    let mut frame: MonoFrame = [0.0; FRAME];
    // What goes into the next packet, and how much of it is there.
    let mut packet: OpusFrame = [0.0; OPUS_FRAME];
    let mut filled = 0;
    // A random start, as RFC 3550 asks.
    let mut timestamp: u32 = rand::random();
    let mut gap = true;
    'device: loop {
        if mic == MicSpec::None {
            set_status(&stats, None, Some("no microphone: listening only".into()));
            match commands.recv() {
                Ok(Command::SetMic(m)) => {
                    mic = m;
                    continue 'device;
                }
                Ok(Command::Stop) | Err(_) => return,
            }
        }
        let mut source = match open_source(&mic) {
            Ok(s) => s,
            Err(e) => {
                set_status(&stats, None, Some(format!("{e}: listening only")));
                // Try again later (a headset may be plugged in).
                match commands.recv_timeout(Duration::from_secs(3)) {
                    Ok(Command::SetMic(m)) => mic = m,
                    Ok(Command::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                }
                continue 'device;
            }
        };
        set_status(&stats, Some(source.name()), None);
        if let Ok(mut s) = stats.lock() {
            s.source_started = source.started();
        }
        processor.reset_reference();
        loop {
            match commands.try_recv() {
                Ok(Command::SetMic(m)) => {
                    mic = m;
                    if let Ok(mut s) = stats.lock() {
                        s.notice = None;
                    }
                    continue 'device;
                }
                Ok(Command::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if let Err(e) = source.read(&mut frame) {
                if mic != fallback {
                    // Unplugged mid-call: the default takes over, and the
                    // call goes on (the RTP clock and encoder carry on too).
                    let notice = format!(
                        "{} stopped ({e}); now using {}",
                        source.name(),
                        if fallback == MicSpec::Default {
                            "the default microphone"
                        } else {
                            "the fallback microphone"
                        }
                    );
                    tracing::warn!("{notice}");
                    if let Ok(mut s) = stats.lock() {
                        s.notice = Some(notice);
                    }
                    mic = fallback.clone();
                } else {
                    set_status(&stats, None, Some(format!("{e}: listening only")));
                }
                continue 'device;
            }
            if let Some(room) = room.as_mut() {
                room.hear(&mut frame);
            }
            let captured = Instant::now();
            control.frames.fetch_add(1, Ordering::Relaxed);
            processor.configure(control.processing());
            let probability = processor.process(&mut frame);
            if processor.window_closed()
                && let Ok(mut s) = stats.lock()
            {
                s.processing.clone_from(processor.stats());
            }
            let level = rms(&frame);
            control
                .level_milli
                .store((level * 1000.0) as u32, Ordering::Relaxed);
            let transmitting = control.transmitting();
            control.speaking.store(
                transmitting && vad.update(level, probability),
                Ordering::Relaxed,
            );
            packet[filled..filled + FRAME].copy_from_slice(&frame);
            filled += FRAME;
            if filled < OPUS_FRAME {
                continue;
            }
            filled = 0;
            let ts = timestamp;
            timestamp = timestamp.wrapping_add(OPUS_FRAME as u32);
            if !transmitting {
                gap = true;
                continue;
            }
            match encoder.encode(&packet) {
                Ok(Some(payload)) => {
                    control.packets.fetch_add(1, Ordering::Relaxed);
                    control
                        .bytes
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    let _ = out.try_send(EncodedFrame {
                        timestamp: ts,
                        marker: gap,
                        payload: bytes::Bytes::copy_from_slice(payload),
                        captured,
                    });
                    gap = false;
                }
                Ok(None) => gap = true,
                Err(e) => tracing::warn!("opus encode: {e}"),
            }
        }
    }
}
