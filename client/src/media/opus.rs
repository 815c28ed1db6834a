//! Opus through libopus: one encoder for the microphone (voice mode, mono
//! 48 kHz, [`OPUS_FRAME`]-long frames, 56 kbit/s, in-band FEC, DTX), one
//! decoder per peer with FEC recovery and packet-loss concealment. The
//! decoder takes packets of any length Opus allows (2.5 to 120 ms), so
//! clients that send 20 ms (browsers) and 10 ms (Hallway) mix alike.

use super::{FRAME, MediaError, SAMPLE_RATE};

/// Average bitrate while talking (the SDP's `maxaveragebitrate`). PESQ
/// wideband MOS through the whole pipeline (docs/benchmarks.md, "Speech
/// quality"), 20 ms packets: 3.5 at 24 kbit/s, 4.1 at 48; 10 ms packets
/// cost 0.1 at the same rate, which 56 kbit/s wins back (4.04).
pub const BITRATE: i32 = 56_000;
/// Largest packet we produce or accept.
pub const MAX_PACKET: usize = 1500;
/// Samples in each packet we send.
pub const OPUS_FRAME: usize = FRAME;
const _: () = assert!(OPUS_FRAME.is_multiple_of(FRAME) && OPUS_FRAME <= MAX_DECODED);
/// One packet's worth of microphone samples.
pub type OpusFrame = [f32; OPUS_FRAME];
/// The longest packet Opus has: 120 ms.
pub const MAX_DECODED: usize = 5760;

/// How many samples (at 48 kHz) an Opus packet holds, from its header;
/// `None` if it is no Opus packet.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let n = opus::packet::get_nb_samples(packet, SAMPLE_RATE).ok()?;
    (1..=MAX_DECODED)
        .contains(&n)
        .then(|| u32::try_from(n).ok())
        .flatten()
}

pub struct VoiceEncoder {
    inner: opus::Encoder,
    out: [u8; MAX_PACKET],
}

impl VoiceEncoder {
    pub fn new() -> Result<VoiceEncoder, MediaError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(BITRATE))?;
        inner.set_vbr(true)?;
        inner.set_inband_fec(true)?;
        // FEC only kicks in when the encoder expects some loss.
        inner.set_packet_loss_perc(10)?;
        inner.set_dtx(true)?;
        inner.set_signal(opus::Signal::Voice)?;
        Ok(VoiceEncoder {
            inner,
            out: [0; MAX_PACKET],
        })
    }

    /// Encodes one frame. `None` means "nothing to send" (DTX during
    /// silence: libopus returns a 1–2 byte packet that carries no audio).
    pub fn encode(&mut self, frame: &OpusFrame) -> Result<Option<&[u8]>, MediaError> {
        let n = self.inner.encode_float(frame, &mut self.out)?;
        if n <= 2 {
            return Ok(None);
        }
        Ok(Some(&self.out[..n]))
    }
}

pub struct VoiceDecoder {
    inner: opus::Decoder,
}

impl VoiceDecoder {
    pub fn new() -> Result<VoiceDecoder, MediaError> {
        Ok(VoiceDecoder {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet; returns how many samples it held.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, MediaError> {
        Ok(self.inner.decode_float(packet, out, false)?)
    }

    /// Rebuilds the `samples` lost before `next_packet` from its FEC data.
    pub fn recover(
        &mut self,
        next_packet: &[u8],
        samples: usize,
        out: &mut [f32],
    ) -> Result<usize, MediaError> {
        let n = samples.min(out.len());
        let out = &mut out[..n];
        Ok(self.inner.decode_float(next_packet, out, true)?)
    }

    /// Packet-loss concealment: an estimate of `samples` missing (a
    /// multiple of 2.5 ms).
    pub fn conceal(&mut self, samples: usize, out: &mut [f32]) -> Result<usize, MediaError> {
        let n = samples.min(out.len());
        let out = &mut out[..n];
        Ok(self.inner.decode_float(&[], out, false)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, n: usize, amp: f32) -> Vec<OpusFrame> {
        let mut frames = Vec::new();
        let mut i = 0usize;
        for _ in 0..n {
            let mut f = [0.0; OPUS_FRAME];
            for s in f.iter_mut() {
                *s = amp * (2.0 * std::f32::consts::PI * hz * i as f32 / SAMPLE_RATE as f32).sin();
                i += 1;
            }
            frames.push(f);
        }
        frames
    }

    /// Packets per second.
    const RATE: usize = SAMPLE_RATE as usize / OPUS_FRAME;

    #[test]
    fn voice_round_trips_at_the_target_bitrate() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let mut bytes = 0;
        let mut out = [0.0; MAX_DECODED];
        let mut level = 0.0;
        for f in tone(440.0, 2 * RATE, 0.3) {
            let packet = enc
                .encode(&f)
                .unwrap()
                .expect("a tone is not silence")
                .to_vec();
            bytes += packet.len();
            assert_eq!(packet_samples(&packet), Some(OPUS_FRAME as u32));
            let n = dec.decode(&packet, &mut out).unwrap();
            assert_eq!(n, OPUS_FRAME);
            level = super::super::rms(&out[..n]);
        }
        let kbps = bytes as f32 * 8.0 / 2.0 / 1000.0;
        // VBR: at most the target and a little, not far below it.
        let target = BITRATE as f32 / 1000.0;
        assert!(
            (target * 0.6..=target * 1.1).contains(&kbps),
            "{kbps} kbit/s"
        );
        assert!((level - 0.3 / 2f32.sqrt()).abs() < 0.05, "level {level}");
    }

    #[test]
    fn silence_is_not_sent() {
        let mut enc = VoiceEncoder::new().unwrap();
        let silence = [0.0; OPUS_FRAME];
        let sent = (0..RATE)
            .filter(|_| enc.encode(&silence).unwrap().is_some())
            .count();
        // DTX sends the first 200 ms or so, then one packet every 400 ms.
        assert!(
            sent * OPUS_FRAME <= SAMPLE_RATE as usize / 3,
            "{sent} of {RATE} sent"
        );
    }

    #[test]
    fn lost_frames_are_recovered_or_concealed() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let packets: Vec<Vec<u8>> = tone(300.0, 20, 0.3)
            .iter()
            .map(|f| enc.encode(f).unwrap().unwrap().to_vec())
            .collect();
        let mut out = [0.0; MAX_DECODED];
        for p in &packets[..10] {
            dec.decode(p, &mut out).unwrap();
        }
        let n = dec.recover(&packets[11], OPUS_FRAME, &mut out).unwrap();
        assert_eq!(n, OPUS_FRAME);
        assert!(super::super::rms(&out[..n]) > 0.05);
        assert_eq!(dec.conceal(FRAME, &mut out).unwrap(), FRAME);
        assert!(dec.decode(&[0xff; 3], &mut out).is_err() || super::super::rms(&out) < 1.0);
        assert_eq!(packet_samples(&[]), None);
    }
}
