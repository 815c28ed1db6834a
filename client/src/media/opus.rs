//! Opus through libopus: one encoder for the microphone (voice mode, mono
//! 48 kHz, 20 ms frames, 48 kbit/s, in-band FEC, DTX), one decoder
//! per peer with FEC recovery and packet-loss concealment.

use super::{FRAME, MediaError, MonoFrame, SAMPLE_RATE};

/// Average bitrate while talking (the SDP's `maxaveragebitrate`). PESQ
/// wideband MOS through the whole pipeline (docs/benchmarks.md, "Speech
/// quality"): 3.5 at 24 kbit/s, 4.1 at 48; with 5% loss 2.3 and 3.9.
pub const BITRATE: i32 = 48_000;
/// Largest packet we produce or accept.
pub const MAX_PACKET: usize = 1500;

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

    /// Encodes 20 ms. `None` means "nothing to send" (DTX during silence:
    /// libopus returns a 1–2 byte packet that carries no audio).
    pub fn encode(&mut self, frame: &MonoFrame) -> Result<Option<&[u8]>, MediaError> {
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

    /// Decodes one packet into 20 ms. A packet that is not 20 ms long or not
    /// Opus at all is an error (the caller conceals instead).
    pub fn decode(&mut self, packet: &[u8], out: &mut MonoFrame) -> Result<(), MediaError> {
        let n = self.inner.decode_float(packet, out, false)?;
        if n != FRAME {
            out[n.min(FRAME)..].fill(0.0);
        }
        Ok(())
    }

    /// Rebuilds a lost frame from the FEC data in the packet that follows it.
    pub fn recover(&mut self, next_packet: &[u8], out: &mut MonoFrame) -> Result<(), MediaError> {
        self.inner.decode_float(next_packet, out, true)?;
        Ok(())
    }

    /// Packet-loss concealment: an estimate of the missing 20 ms.
    pub fn conceal(&mut self, out: &mut MonoFrame) -> Result<(), MediaError> {
        self.inner.decode_float(&[], out, false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, n: usize, amp: f32) -> Vec<MonoFrame> {
        let mut frames = Vec::new();
        let mut i = 0usize;
        for _ in 0..n {
            let mut f = [0.0; FRAME];
            for s in f.iter_mut() {
                *s = amp * (2.0 * std::f32::consts::PI * hz * i as f32 / SAMPLE_RATE as f32).sin();
                i += 1;
            }
            frames.push(f);
        }
        frames
    }

    #[test]
    fn voice_round_trips_at_the_target_bitrate() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let mut bytes = 0;
        let mut out = [0.0; FRAME];
        let mut level = 0.0;
        for f in tone(440.0, 100, 0.3) {
            let packet = enc
                .encode(&f)
                .unwrap()
                .expect("a tone is not silence")
                .to_vec();
            bytes += packet.len();
            dec.decode(&packet, &mut out).unwrap();
            level = super::super::rms(&out);
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
        let silence = [0.0; FRAME];
        let sent = (0..50)
            .filter(|_| enc.encode(&silence).unwrap().is_some())
            .count();
        // DTX sends a few frames at the start, then one every 400 ms at most.
        assert!(sent <= 12, "{sent} of 50 silent frames sent");
    }

    #[test]
    fn lost_frames_are_recovered_or_concealed() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let packets: Vec<Vec<u8>> = tone(300.0, 20, 0.3)
            .iter()
            .map(|f| enc.encode(f).unwrap().unwrap().to_vec())
            .collect();
        let mut out = [0.0; FRAME];
        for p in &packets[..10] {
            dec.decode(p, &mut out).unwrap();
        }
        dec.recover(&packets[11], &mut out).unwrap();
        assert!(super::super::rms(&out) > 0.05);
        dec.conceal(&mut out).unwrap();
        assert!(dec.decode(&[0xff; 3], &mut out).is_err() || super::super::rms(&out) < 1.0);
    }
}
