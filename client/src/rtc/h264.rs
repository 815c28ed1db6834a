//! H.264 access units rebuilt from RTP packets (RFC 6184): pure logic, cut
//! out of the track reader so it can be tested with real packetized H.264,
//! damaged input included.

use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::rtp::packetizer::Depacketizer;

/// An access unit larger than this is garbage (a 640×480 keyframe is ~30 KB).
pub const MAX_ACCESS_UNIT: usize = 2 << 20;

/// What one RTP packet completed.
#[derive(Debug, PartialEq)]
pub enum Assembled {
    /// The access unit goes on.
    Pending,
    /// A whole access unit (Annex-B).
    Unit(Vec<u8>),
    /// An access unit ended incomplete (a packet was lost, reordered or
    /// unreadable) and was dropped: the decoder needs a keyframe.
    Damaged,
}

/// Rebuilds H.264 access units from RTP packets: a unit is the packets up to
/// the one with the marker bit, all with one timestamp. No reordering (the
/// packets come over one loopback or LAN path; a late packet is a loss).
#[derive(Default)]
pub struct UnitAssembler {
    depacketizer: H264Packet,
    unit: Vec<u8>,
    damaged: bool,
    last: Option<(u16, u32)>,
    /// Payload bytes taken since the last complete unit.
    pending: usize,
}

/// Whether a packet, if it is a STAP-A (RFC 6184 5.7.1), holds whole
/// length-prefixed NAL units and nothing else.
pub fn stap_a_is_sound(payload: &[u8]) -> bool {
    const STAP_A: u8 = 24;
    if payload.first().is_none_or(|b| b & 0x1f != STAP_A) {
        return true;
    }
    let mut at = 1;
    while at < payload.len() {
        let Some(len) = payload.get(at..at + 2) else {
            return false;
        };
        at += 2 + (usize::from(len[0]) << 8 | usize::from(len[1]));
    }
    at == payload.len()
}

impl UnitAssembler {
    pub fn push(&mut self, packet: &webrtc::rtp::packet::Packet) -> Assembled {
        let (seq, ts) = (packet.header.sequence_number, packet.header.timestamp);
        let mut lost_marker = false;
        if let Some((last_seq, last_ts)) = self.last {
            if seq != last_seq.wrapping_add(1) {
                // A lost (or reordered) packet: this unit is incomplete.
                self.damaged = true;
                self.depacketizer = H264Packet::default();
            }
            if ts != last_ts && (!self.unit.is_empty() || self.damaged) {
                // The previous unit's marker packet never came.
                lost_marker = true;
                self.unit.clear();
            }
        }
        self.last = Some((seq, ts));
        self.pending += packet.payload.len();
        if !stap_a_is_sound(&packet.payload) {
            // webrtc-rs' depacketizer would index past a truncated STAP-A.
            self.damaged = true;
        } else {
            match self.depacketizer.depacketize(&packet.payload) {
                Ok(nal) => self.unit.extend_from_slice(&nal),
                Err(_) => self.damaged = true,
            }
        }
        if self.pending > MAX_ACCESS_UNIT {
            // Also bounds FU-A fragments that never end.
            self.damaged = true;
            self.unit.clear();
            self.depacketizer = H264Packet::default();
            self.pending = 0;
        }
        if !packet.header.marker {
            return if lost_marker {
                Assembled::Damaged
            } else {
                Assembled::Pending
            };
        }
        let unit = std::mem::take(&mut self.unit);
        self.pending = 0;
        let damaged = std::mem::replace(&mut self.damaged, false) || lost_marker;
        if damaged {
            Assembled::Damaged
        } else if unit.is_empty() {
            Assembled::Pending
        } else {
            Assembled::Unit(unit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RTP packets for one access unit, as the sending track makes them.
    fn packets(au: &[u8], seq: &mut u16, ts: u32) -> Vec<webrtc::rtp::packet::Packet> {
        use webrtc::rtp::codecs::h264::H264Payloader;
        use webrtc::rtp::packetizer::Payloader;
        let payloads = H264Payloader::default()
            .payload(1188, &bytes::Bytes::copy_from_slice(au))
            .unwrap();
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                *seq = seq.wrapping_add(1);
                webrtc::rtp::packet::Packet {
                    header: webrtc::rtp::header::Header {
                        sequence_number: *seq,
                        timestamp: ts,
                        marker: i + 1 == n,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect()
    }

    #[test]
    fn access_units_are_rebuilt_and_damaged_ones_dropped() {
        use crate::media::video::{Stamp, VideoDecoder, VideoEncoder, read_stamp, test_pattern};
        let mut enc = VideoEncoder::new(800_000, 30.0).unwrap();
        let units: Vec<Vec<u8>> = (0..4u16)
            .map(|n| {
                let stamp = Stamp {
                    frame: n,
                    clock_ms: 0,
                };
                enc.encode(&test_pattern(stamp, 640, 480)).unwrap().data
            })
            .collect();
        let mut seq = u16::MAX - 3; // wraps around on the way
        let streams: Vec<_> = units
            .iter()
            .enumerate()
            .map(|(i, au)| packets(au, &mut seq, i as u32 * 3000))
            .collect();
        assert!(
            streams[0].len() > 2,
            "a keyframe spans several packets (FU-A)"
        );

        // In order: every unit whole, and it decodes.
        let mut asm = UnitAssembler::default();
        let mut dec = VideoDecoder::new().unwrap();
        let mut got = Vec::new();
        for p in streams.iter().flatten() {
            match asm.push(p) {
                Assembled::Unit(au) => {
                    got.push(dec.decode(&au).unwrap().map(|f| read_stamp(&f).frame))
                }
                Assembled::Pending => {}
                Assembled::Damaged => panic!("nothing was lost"),
            }
        }
        assert_eq!(got, vec![Some(0), Some(1), Some(2), Some(3)]);

        // A packet lost inside the keyframe: that unit is dropped, the next
        // ones come through (for the decoder to ask for a keyframe).
        let mut asm = UnitAssembler::default();
        let mut results = Vec::new();
        for (i, p) in streams.iter().flatten().enumerate() {
            if i == 1 {
                continue;
            }
            results.push(asm.push(p));
        }
        let damaged = results.iter().filter(|r| **r == Assembled::Damaged).count();
        let whole = results
            .iter()
            .filter(|r| matches!(r, Assembled::Unit(_)))
            .count();
        assert_eq!((damaged, whole), (1, 3));

        // The marker packet of unit 1 lost: unit 1 is dropped when unit 2
        // begins, and so is unit 2 (the lost packet could have been its
        // start); unit 3 comes through.
        let mut asm = UnitAssembler::default();
        let mut results = Vec::new();
        for (u, stream) in streams.iter().enumerate() {
            for p in stream {
                if u == 1 && p.header.marker {
                    continue;
                }
                results.push(asm.push(p));
            }
        }
        let delivered: Vec<&Vec<u8>> = results
            .iter()
            .filter_map(|r| match r {
                Assembled::Unit(au) => Some(au),
                _ => None,
            })
            .collect();
        assert_eq!(delivered, vec![&units[0], &units[3]]);
        assert!(results.contains(&Assembled::Damaged));

        // Garbage payloads are damage, not a panic: FU-B, a STAP-A cut in
        // the middle of a length, a STAP-A whose NAL runs past the end.
        for payload in [
            &[0x1d, 0x00, 0x00][..],
            &[0x18, 0x00, 0x00, 0x07][..],
            &[0x18, 0x00, 0x05, 0x67, 0x42][..],
        ] {
            let mut asm = UnitAssembler::default();
            let mut bad = streams[1][0].clone();
            bad.payload = bytes::Bytes::copy_from_slice(payload);
            bad.header.marker = true;
            assert_eq!(asm.push(&bad), Assembled::Damaged, "{payload:?}");
        }
        assert!(stap_a_is_sound(&[0x78, 0x00, 0x01, 0x67, 0x00, 0x01, 0x68]));
        // FU-A fragments that never end are bounded.
        let mut asm = UnitAssembler::default();
        let mut fragment = streams[0][0].clone();
        fragment.payload = {
            let mut v = vec![0x7c, 0x05];
            v.resize(1200, 0xab);
            bytes::Bytes::from(v)
        };
        let mut damaged = false;
        for i in 0..(MAX_ACCESS_UNIT / 1000) as u16 {
            fragment.header.sequence_number = i;
            damaged |= asm.push(&fragment) == Assembled::Damaged;
            assert!(asm.unit.len() + asm.pending <= MAX_ACCESS_UNIT + 1200);
        }
        fragment.header.marker = true;
        damaged |= asm.push(&fragment) == Assembled::Damaged;
        assert!(damaged);
    }
}
