//! An adaptive jitter buffer for one peer's Opus packets.
//!
//! Packets are ordered by RTP timestamp. At the start of each talk spurt the
//! first packet is held for `target - 20 ms` before it plays (one mixer tick
//! adds up to 20 ms more), then one frame plays per tick. The target follows
//! the measured interarrival jitter (RFC 3550's estimator) between 20 and 80
//! ms, and jumps up when a packet arrives too late to play; it drifts back
//! down when the network is calm. A missing frame is rebuilt from the FEC
//! data in the next packet if that has arrived, else concealed; after 60 ms
//! with nothing buffered the peer is considered silent (DTX) until the next
//! packet starts a new spurt. A gap in the sequence numbers (a packet lost
//! on the way, or overtaken) adds one frame to the target, as NetEq does: the
//! packet after a lost one is then there in time for its FEC to rebuild it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// RTP timestamp units per 20 ms frame at 48 kHz.
pub const TS_PER_FRAME: i64 = 960;
pub const MIN_TARGET_MS: f64 = 20.0;
pub const MAX_TARGET_MS: f64 = 80.0;
/// More than this many buffered packets (0.5 s) and the oldest are dropped.
const MAX_PACKETS: usize = 25;
/// Frames concealed with an empty buffer before going silent.
const MAX_CONCEAL: u32 = 3;
/// A sequence number this far ahead of the newest is a loss; further is a
/// new stream (or garbage) and only resets the count.
const LOSS_GAP: u16 = 100;

/// What to play for one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The frame is lost but the next packet is here: decode its FEC data.
    Recover(Vec<u8>),
    /// The frame is lost: conceal.
    Conceal,
    /// Nothing is playing (silence, or waiting for the spurt's hold time).
    Silence,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct JitterStats {
    pub played: u64,
    pub recovered: u64,
    pub concealed: u64,
    pub late: u64,
    pub dropped: u64,
    pub jitter_ms: f64,
    pub target_ms: f64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<i64, (Vec<u8>, Instant)>,
    /// Last 32-bit timestamp seen and its extended value.
    last_ts: Option<(u32, i64)>,
    /// Extended timestamp of the next frame to play; `None` while silent.
    next: Option<i64>,
    conceal_run: u32,
    epoch: Instant,
    last_transit: Option<f64>,
    jitter_ms: f64,
    late_penalty_ms: f64,
    /// One frame while losses have been seen lately (time for FEC).
    loss_penalty_ms: f64,
    /// The newest RTP sequence number seen.
    newest_seq: Option<u16>,
    last_tick: Option<Instant>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(now: Instant) -> JitterBuffer {
        JitterBuffer {
            packets: BTreeMap::new(),
            last_ts: None,
            next: None,
            conceal_run: 0,
            epoch: now,
            last_transit: None,
            jitter_ms: 0.0,
            late_penalty_ms: 0.0,
            loss_penalty_ms: 0.0,
            newest_seq: None,
            last_tick: None,
            stats: JitterStats {
                target_ms: MIN_TARGET_MS,
                ..JitterStats::default()
            },
        }
    }

    /// The playout delay aimed for at the start of a spurt.
    pub fn target(&self) -> Duration {
        Duration::from_secs_f64(self.target_ms() / 1000.0)
    }

    fn target_ms(&self) -> f64 {
        (MIN_TARGET_MS + 3.0 * self.jitter_ms + self.late_penalty_ms + self.loss_penalty_ms)
            .clamp(MIN_TARGET_MS, MAX_TARGET_MS)
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            jitter_ms: self.jitter_ms,
            target_ms: self.target_ms(),
            ..self.stats
        }
    }

    pub fn buffered(&self) -> usize {
        self.packets.len()
    }

    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last_ts {
            None => i64::from(ts),
            Some((last, last_ext)) => last_ext + i64::from(ts.wrapping_sub(last) as i32),
        };
        if self.last_ts.is_none_or(|(_, e)| ext > e) {
            self.last_ts = Some((ts, ext));
        }
        ext
    }

    /// Notes a packet's RTP sequence number (before [`JitterBuffer::push`]).
    /// Sequence numbers count packets sent, so unlike timestamps they have
    /// no gaps for DTX silence.
    pub fn sequence(&mut self, seq: u16) {
        let ahead = self.newest_seq.map_or(1, |n| seq.wrapping_sub(n));
        // A packet at most LOSS_GAP behind the newest is a late one: it
        // leaves the newest alone.
        let behind = ahead > u16::MAX - LOSS_GAP;
        if (2..=LOSS_GAP).contains(&ahead) {
            // Packets between were lost (or are late): keep one frame in
            // hand from the next spurt on, for the FEC.
            self.loss_penalty_ms = 20.0;
        }
        if ahead != 0 && !behind {
            self.newest_seq = Some(seq);
        }
    }

    /// Adds a packet that arrived at `arrival`.
    pub fn push(&mut self, ts: u32, payload: Vec<u8>, arrival: Instant) {
        let ext = self.extend(ts);
        // RFC 3550 interarrival jitter, in ms.
        let transit = arrival.duration_since(self.epoch).as_secs_f64() * 1000.0 - ext as f64 / 48.0;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
        if let Some(next) = self.next
            && ext < next
        {
            self.stats.late += 1;
            // It missed its tick: play later from now on, up to the ceiling.
            self.late_penalty_ms = (self.late_penalty_ms + 20.0).min(MAX_TARGET_MS);
            if ext == next - TS_PER_FRAME && self.conceal_run > 0 {
                // The frame just concealed: play it after all, 20 ms later.
                self.next = Some(ext);
                self.packets.insert(ext, (payload, arrival));
            }
            return;
        }
        self.packets.insert(ext, (payload, arrival));
        while self.packets.len() > MAX_PACKETS {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
    }

    /// The frame for the tick at `now` (call once per 20 ms).
    pub fn pop(&mut self, now: Instant) -> Playout {
        if let Some(last) = self.last_tick {
            // Calm networks bring the target back down, 1 ms per second.
            let secs = now.saturating_duration_since(last).as_secs_f64();
            self.late_penalty_ms = (self.late_penalty_ms - secs).max(0.0);
            // Ten seconds without a loss give the frame back.
            self.loss_penalty_ms = (self.loss_penalty_ms - 2.0 * secs).max(0.0);
        }
        self.last_tick = Some(now);
        let next = match self.next {
            Some(n) => n,
            None => {
                let Some((&first, &(_, arrival))) = self.packets.first_key_value() else {
                    return Playout::Silence;
                };
                let hold = self.target().saturating_sub(super::FRAME_DURATION);
                if now < arrival + hold {
                    return Playout::Silence;
                }
                first
            }
        };
        // Too much buffered for the target (a burst after a stall): skip ahead.
        let want = (self.target_ms() / 20.0).ceil() as usize + 2;
        let mut next = next;
        if self.packets.len() > want + 2 {
            while self.packets.len() > want {
                if let Some((k, _)) = self.packets.pop_first() {
                    self.stats.dropped += 1;
                    next = k + TS_PER_FRAME;
                }
            }
        }
        // Anything older than `next` is of no use any more.
        while let Some((&k, _)) = self.packets.first_key_value() {
            if k >= next {
                break;
            }
            self.packets.pop_first();
        }
        if let Some((payload, _)) = self.packets.remove(&next) {
            self.next = Some(next + TS_PER_FRAME);
            self.conceal_run = 0;
            self.stats.played += 1;
            return Playout::Packet(payload);
        }
        if self.packets.is_empty() {
            self.conceal_run += 1;
            if self.conceal_run > MAX_CONCEAL {
                // The talker went quiet (DTX): wait for the next spurt.
                self.next = None;
                self.conceal_run = 0;
                return Playout::Silence;
            }
            self.next = Some(next + TS_PER_FRAME);
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        self.next = Some(next + TS_PER_FRAME);
        self.conceal_run += 1;
        if let Some((payload, _)) = self.packets.get(&(next + TS_PER_FRAME)) {
            self.stats.recovered += 1;
            return Playout::Recover(payload.clone());
        }
        self.stats.concealed += 1;
        Playout::Conceal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    fn pkt(i: u8) -> Vec<u8> {
        vec![i; 10]
    }

    #[test]
    fn in_order_packets_play_in_order_after_the_hold() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..5u8 {
            jb.push(1000 + u32::from(i) * 960, pkt(i), t0 + TICK * u32::from(i));
        }
        // Target 20 ms: no hold, the first tick after arrival plays.
        let mut played = Vec::new();
        for k in 0..5u32 {
            match jb.pop(t0 + TICK * k + Duration::from_millis(5)) {
                Playout::Packet(p) => played.push(p[0]),
                other => panic!("tick {k}: {other:?}"),
            }
        }
        assert_eq!(played, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_ones_fec() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        // Sent every 20 ms; packet 2 never arrives. By the time its tick
        // comes, packet 3 is here and carries FEC for it.
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut got = Vec::new();
        jb.push(0, pkt(0), ms(0));
        got.push(jb.pop(ms(1)));
        jb.push(960, pkt(1), ms(20));
        got.push(jb.pop(ms(21)));
        jb.push(2880, pkt(3), ms(60));
        got.push(jb.pop(ms(61)));
        jb.push(3840, pkt(4), ms(80));
        got.push(jb.pop(ms(81)));
        got.push(jb.pop(ms(101)));
        assert_eq!(got[0], Playout::Packet(pkt(0)));
        assert_eq!(got[2], Playout::Recover(pkt(3)));
        assert_eq!(got[3], Playout::Packet(pkt(3)));
        assert_eq!(got[4], Playout::Packet(pkt(4)));
        assert_eq!(jb.stats().recovered, 1);
    }

    /// With the 20 ms target, a lost packet's tick comes before the next
    /// packet (and its FEC) arrives: concealed. The loss adds a frame to the
    /// target, so in the next spurt a loss is rebuilt from FEC.
    #[test]
    fn a_loss_keeps_a_frame_in_hand_for_fec_from_the_next_spurt() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let ms = |m: u64| t0 + Duration::from_millis(m);
        // Spurt 1: frames 0..6 sent every 20 ms, frame 2 lost; each tick
        // comes 1 ms after the frame due then arrives.
        let mut got = Vec::new();
        for k in 0..6u64 {
            if k != 2 {
                jb.sequence(k as u16);
                jb.push((k * 960) as u32, pkt(k as u8), ms(20 * k));
            }
            got.push(jb.pop(ms(20 * k + 1)));
        }
        assert_eq!(got[2], Playout::Conceal, "{got:?}");
        assert!(jb.stats().target_ms > 39.0, "{:?}", jb.stats());
        // Silence (DTX), then spurt 2 two seconds later, frame 102 lost.
        // The silence is no gap in the sequence numbers.
        for k in 6..12u64 {
            jb.pop(ms(20 * k + 1));
        }
        let base = 2000;
        let mut got = Vec::new();
        for k in 0..8u64 {
            let f = 100 + k;
            if k != 2 {
                jb.sequence(6 + k as u16);
                jb.push((f * 960) as u32, pkt(f as u8), ms(base + 20 * k));
            }
            got.push(jb.pop(ms(base + 20 * k + 1)));
        }
        let played: Vec<&Playout> = got.iter().filter(|p| **p != Playout::Silence).collect();
        assert_eq!(played[0], &Playout::Packet(pkt(100)), "{got:?}");
        assert_eq!(played[2], &Playout::Recover(pkt(103)), "{got:?}");
        assert_eq!(jb.stats().recovered, 1);
    }

    #[test]
    fn dtx_pauses_are_not_losses() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        // Two spurts, the timestamps 2 s apart, the sequence numbers not.
        for (i, ts) in [0u32, 960, 1920, 96_000, 96_960].into_iter().enumerate() {
            jb.sequence(65_534u16.wrapping_add(i as u16));
            jb.push(
                ts,
                pkt(i as u8),
                t0 + Duration::from_micros(u64::from(ts) * 1000 / 48),
            );
        }
        assert_eq!(jb.stats().target_ms, MIN_TARGET_MS);
        // A packet from long ago, or a new stream, is no loss either.
        jb.sequence(30_000);
        assert_eq!(jb.stats().target_ms, MIN_TARGET_MS);
        // Nor is the packet after one that came late (out of order).
        jb.sequence(29_999);
        jb.sequence(30_001);
        assert_eq!(jb.stats().target_ms, MIN_TARGET_MS);
    }

    #[test]
    fn a_late_packet_raises_the_target_and_still_plays() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), t0);
        assert_eq!(jb.pop(t0), Playout::Packet(pkt(0)));
        // Packet 1 is late: its tick conceals.
        assert_eq!(jb.pop(t0 + TICK), Playout::Conceal);
        jb.push(960, pkt(1), t0 + TICK + Duration::from_millis(3));
        assert_eq!(jb.stats().late, 1);
        assert!(jb.stats().target_ms >= 40.0);
        assert_eq!(jb.pop(t0 + TICK * 2), Playout::Packet(pkt(1)));
    }

    #[test]
    fn silence_ends_a_spurt_and_the_next_one_resyncs() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), t0);
        assert_eq!(jb.pop(t0), Playout::Packet(pkt(0)));
        let mut t = t0;
        for _ in 0..MAX_CONCEAL {
            t += TICK;
            assert_eq!(jb.pop(t), Playout::Conceal);
        }
        t += TICK;
        assert_eq!(jb.pop(t), Playout::Silence);
        // DTX gap of two seconds, then talk again.
        let resume = t0 + Duration::from_secs(2);
        jb.push(960 * 100, pkt(9), resume);
        assert_eq!(
            jb.pop(resume + Duration::from_millis(1)),
            Playout::Packet(pkt(9))
        );
    }

    #[test]
    fn jitter_raises_the_hold_within_bounds() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..200u32 {
            let wobble = Duration::from_millis(u64::from(i % 2) * 30);
            jb.push(i * 960, pkt(0), t0 + TICK * i + wobble);
        }
        let target = jb.stats().target_ms;
        assert!(target > 40.0 && target <= MAX_TARGET_MS, "{target}");
    }

    #[test]
    fn timestamps_wrap_around() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let start = u32::MAX - 960;
        for i in 0..3u32 {
            jb.push(start.wrapping_add(i * 960), pkt(i as u8), t0 + TICK * i);
        }
        let got: Vec<Playout> = (0..3).map(|k| jb.pop(t0 + TICK * k)).collect();
        assert_eq!(
            got,
            vec![
                Playout::Packet(pkt(0)),
                Playout::Packet(pkt(1)),
                Playout::Packet(pkt(2))
            ]
        );
    }

    #[test]
    fn a_flood_is_bounded() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..100u32 {
            jb.push(i * 960, pkt(0), t0);
        }
        assert!(jb.buffered() <= MAX_PACKETS);
        // Once the (now maximal) hold is over, the excess is skipped.
        jb.pop(t0 + Duration::from_millis(100));
        assert!(jb.buffered() <= 8);
    }
}
