//! An adaptive jitter buffer for one peer's Opus packets.
//!
//! Packets are ordered by RTP timestamp and may be of any length (Hallway
//! sends 10 ms, browsers 20 ms; the caller reads each packet's length from
//! its Opus header). At the start of each talk spurt the first packet is held
//! for `target - 10 ms` before it plays (one mixer tick adds up to 10 ms
//! more); then the mixer takes packets as it needs samples. The target
//! follows the measured interarrival jitter (RFC 3550's estimator) between 10
//! and 80 ms, and jumps up when a packet arrives too late to play; it drifts
//! back down when the network is calm. A missing packet is rebuilt from the
//! FEC data in the next packet if that has arrived, else concealed; after 60
//! ms with nothing buffered the peer is considered silent (DTX) until the
//! next packet starts a new spurt. A gap in the sequence numbers (a packet
//! lost on the way, or overtaken) adds one packet to the target, as NetEq
//! does: the packet after a lost one is then there in time for its FEC to
//! rebuild it.

use super::{FRAME, FRAME_DURATION};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// RTP timestamp units per millisecond (the Opus clock is 48 kHz).
const TS_PER_MS: f64 = 48.0;
/// The least Opus can conceal or rebuild: 2.5 ms.
const OPUS_GRAIN: i64 = 120;
pub const MIN_TARGET_MS: f64 = FRAME_DURATION.as_millis() as f64;
pub const MAX_TARGET_MS: f64 = 80.0;
/// More than this many buffered packets (0.6 s of ours) and the oldest are
/// dropped.
const MAX_PACKETS: usize = 60;
/// Concealed with an empty buffer before going silent (60 ms).
const MAX_CONCEAL: u32 = 2880;
/// A sequence number this far ahead of the newest is a loss; further is a
/// new stream (or garbage) and only resets the count.
const LOSS_GAP: u16 = 100;

/// What to play next.
#[derive(Debug, Clone, PartialEq)]
pub enum Playout {
    /// Decode this packet (`samples` long).
    Packet(Vec<u8>, u32),
    /// `samples` are lost but the packet after them is here: decode its FEC
    /// data.
    Recover(Vec<u8>, u32),
    /// `samples` are lost: conceal.
    Conceal(u32),
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
struct Entry {
    payload: Vec<u8>,
    samples: u32,
    arrival: Instant,
}

#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<i64, Entry>,
    /// Last 32-bit timestamp seen and its extended value.
    last_ts: Option<(u32, i64)>,
    /// Extended timestamp of the next sample to play; `None` while silent.
    next: Option<i64>,
    /// Samples concealed since the last packet played.
    conceal_run: u32,
    epoch: Instant,
    last_transit: Option<f64>,
    jitter_ms: f64,
    late_penalty_ms: f64,
    /// One packet while losses have been seen lately (time for FEC).
    loss_penalty_ms: f64,
    /// The length of the last packet pushed, in ms.
    packet_ms: f64,
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
            packet_ms: 20.0,
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
            // Packets between were lost (or are late): keep one packet in
            // hand from the next spurt on, for the FEC.
            self.loss_penalty_ms = self.packet_ms;
        }
        if ahead != 0 && !behind {
            self.newest_seq = Some(seq);
        }
    }

    /// Adds a packet of `samples` (at 48 kHz) that arrived at `arrival`.
    pub fn push(&mut self, ts: u32, payload: Vec<u8>, samples: u32, arrival: Instant) {
        let ext = self.extend(ts);
        self.packet_ms = f64::from(samples) / TS_PER_MS;
        // RFC 3550 interarrival jitter, in ms.
        let transit =
            arrival.duration_since(self.epoch).as_secs_f64() * 1000.0 - ext as f64 / TS_PER_MS;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
        let entry = Entry {
            payload,
            samples,
            arrival,
        };
        if let Some(next) = self.next
            && ext < next
        {
            self.stats.late += 1;
            // It missed its tick: play a packet later from the next spurt
            // on, up to the ceiling.
            self.late_penalty_ms = (self.late_penalty_ms + self.packet_ms).min(MAX_TARGET_MS);
            if self.conceal_run > 0 && next - ext <= i64::from(self.conceal_run) {
                // What was just concealed: play it after all, that much
                // later.
                self.next = Some(ext);
                self.packets.insert(ext, entry);
            }
            return;
        }
        self.packets.insert(ext, entry);
        while self.packets.len() > MAX_PACKETS {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
    }

    /// How much audio is buffered, in ms.
    fn buffered_ms(&self) -> f64 {
        let samples: u64 = self.packets.values().map(|e| u64::from(e.samples)).sum();
        samples as f64 / TS_PER_MS
    }

    /// What to play next at the tick at `now`. The mixer asks until it has a
    /// tick's worth of samples.
    pub fn pop(&mut self, now: Instant) -> Playout {
        if let Some(last) = self.last_tick {
            // Calm networks bring the target back down, 1 ms per second.
            let secs = now.saturating_duration_since(last).as_secs_f64();
            self.late_penalty_ms = (self.late_penalty_ms - secs).max(0.0);
            // Ten seconds without a loss give the packet back.
            self.loss_penalty_ms = (self.loss_penalty_ms - 2.0 * secs).max(0.0);
        }
        self.last_tick = Some(now);
        let mut next = match self.next {
            Some(n) => n,
            None => {
                let Some((&first, entry)) = self.packets.first_key_value() else {
                    return Playout::Silence;
                };
                let hold = self.target().saturating_sub(FRAME_DURATION);
                if now < entry.arrival + hold {
                    return Playout::Silence;
                }
                first
            }
        };
        // Too much buffered for the target (a burst after a stall): skip ahead.
        let target = self.target_ms();
        if self.buffered_ms() > target + 80.0 {
            while self.buffered_ms() > target + 40.0 {
                let Some((k, e)) = self.packets.pop_first() else {
                    break;
                };
                self.stats.dropped += 1;
                next = k + i64::from(e.samples);
            }
        }
        // Anything older than `next` is of no use any more.
        while let Some((&k, _)) = self.packets.first_key_value() {
            if k >= next {
                break;
            }
            self.packets.pop_first();
        }
        if let Some(e) = self.packets.remove(&next) {
            self.next = Some(next + i64::from(e.samples));
            self.conceal_run = 0;
            self.stats.played += 1;
            return Playout::Packet(e.payload, e.samples);
        }
        let tick = FRAME as u32;
        let Some((&k, e)) = self.packets.first_key_value() else {
            if self.conceal_run >= MAX_CONCEAL {
                // The talker went quiet (DTX): wait for the next spurt.
                self.next = None;
                self.conceal_run = 0;
                return Playout::Silence;
            }
            self.next = Some(next + i64::from(tick));
            self.conceal_run += tick;
            self.stats.concealed += 1;
            return Playout::Conceal(tick);
        };
        let gap = k - next;
        if gap > i64::from(MAX_CONCEAL) {
            // More missing than concealment would cover: the sender's clock
            // jumped (or a spurt began before this one was over). Go on from
            // the packet.
            self.next = Some(k);
            return self.pop(now);
        }
        if gap == i64::from(e.samples) {
            // The packet after the lost one carries it as FEC.
            let payload = e.payload.clone();
            self.next = Some(k);
            // Played after all (from FEC): should the lost packet turn up
            // now, it is too late.
            self.conceal_run = 0;
            self.stats.recovered += 1;
            return Playout::Recover(payload, e.samples);
        }
        // Conceal up to a tick, in whole 2.5 ms steps; a sliver of a gap
        // (timestamps that do not add up) is skipped.
        let conceal = gap.min(i64::from(tick)) / OPUS_GRAIN * OPUS_GRAIN;
        if conceal == 0 {
            self.next = Some(k);
            return self.pop(now);
        }
        self.next = Some(next + conceal);
        let conceal = conceal as u32;
        self.conceal_run = self.conceal_run.saturating_add(conceal);
        self.stats.concealed += 1;
        Playout::Conceal(conceal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One mixer tick, and our packets' length.
    const TICK: Duration = FRAME_DURATION;
    const N: u32 = FRAME as u32;

    fn pkt(i: u8) -> Vec<u8> {
        vec![i; 10]
    }

    fn ms(t0: Instant, m: u64) -> Instant {
        t0 + Duration::from_millis(m)
    }

    #[test]
    fn in_order_packets_play_in_order_after_the_hold() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..5u8 {
            jb.push(1000 + u32::from(i) * N, pkt(i), N, t0 + TICK * u32::from(i));
        }
        // Minimum target: no hold, the first tick after arrival plays.
        let mut played = Vec::new();
        for k in 0..5u32 {
            match jb.pop(t0 + TICK * k + Duration::from_millis(3)) {
                Playout::Packet(p, n) if n == N => played.push(p[0]),
                other => panic!("tick {k}: {other:?}"),
            }
        }
        assert_eq!(played, vec![0, 1, 2, 3, 4]);
    }

    /// A browser sends 20 ms packets: one is two of our ticks, and a lost
    /// one is rebuilt whole from the next one's FEC.
    #[test]
    fn packets_longer_than_a_tick_play_whole_and_are_rebuilt_whole() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let long = 2 * N;
        jb.push(0, pkt(0), long, ms(t0, 0));
        assert_eq!(jb.pop(ms(t0, 1)), Playout::Packet(pkt(0), long));
        // Packet 1 (20 ms) is lost; packet 2 is here when it is due.
        jb.push(2 * long, pkt(2), long, ms(t0, 40));
        assert_eq!(jb.pop(ms(t0, 41)), Playout::Recover(pkt(2), long));
        assert_eq!(jb.pop(ms(t0, 61)), Playout::Packet(pkt(2), long));
        // Two lost: a tick concealed, then the second rebuilt.
        jb.push(5 * long, pkt(5), long, ms(t0, 100));
        assert_eq!(jb.pop(ms(t0, 101)), Playout::Conceal(N));
        assert_eq!(jb.pop(ms(t0, 111)), Playout::Conceal(N));
        assert_eq!(jb.pop(ms(t0, 121)), Playout::Recover(pkt(5), long));
        assert_eq!(jb.pop(ms(t0, 141)), Playout::Packet(pkt(5), long));
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_ones_fec() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        // Sent every 10 ms; packet 2 never arrives. By the time its tick
        // comes, packet 3 is here and carries FEC for it.
        let mut got = Vec::new();
        jb.push(0, pkt(0), N, ms(t0, 0));
        got.push(jb.pop(ms(t0, 1)));
        jb.push(N, pkt(1), N, ms(t0, 10));
        got.push(jb.pop(ms(t0, 11)));
        jb.push(3 * N, pkt(3), N, ms(t0, 30));
        got.push(jb.pop(ms(t0, 31)));
        jb.push(4 * N, pkt(4), N, ms(t0, 40));
        got.push(jb.pop(ms(t0, 41)));
        got.push(jb.pop(ms(t0, 51)));
        assert_eq!(got[0], Playout::Packet(pkt(0), N));
        assert_eq!(got[2], Playout::Recover(pkt(3), N));
        assert_eq!(got[3], Playout::Packet(pkt(3), N));
        assert_eq!(got[4], Playout::Packet(pkt(4), N));
        assert_eq!(jb.stats().recovered, 1);
    }

    /// With the minimum target, a lost packet's tick comes before the next
    /// packet (and its FEC) arrives: concealed. The loss adds a packet to
    /// the target, so in the next spurt a loss is rebuilt from FEC.
    #[test]
    fn a_loss_keeps_a_frame_in_hand_for_fec_from_the_next_spurt() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let step = FRAME_DURATION.as_millis() as u64;
        // Spurt 1: packets 0..6 sent every tick, packet 2 lost; each tick
        // comes 1 ms after the packet due then arrives.
        let mut got = Vec::new();
        for k in 0..6u64 {
            if k != 2 {
                jb.sequence(k as u16);
                jb.push(k as u32 * N, pkt(k as u8), N, ms(t0, step * k));
            }
            got.push(jb.pop(ms(t0, step * k + 1)));
        }
        assert_eq!(got[2], Playout::Conceal(N), "{got:?}");
        assert!(
            jb.stats().target_ms > 2.0 * MIN_TARGET_MS - 1.0,
            "{:?}",
            jb.stats()
        );
        // Silence (DTX), then spurt 2 two seconds later, packet 102 lost.
        // The silence is no gap in the sequence numbers.
        for k in 6..16u64 {
            jb.pop(ms(t0, step * k + 1));
        }
        // Sent (and arriving) 1 s after the first spurt began.
        let base = 100 * step;
        let mut got = Vec::new();
        for k in 0..8u64 {
            let f = 100 + k;
            if k != 2 {
                jb.sequence(6 + k as u16);
                jb.push(f as u32 * N, pkt(f as u8), N, ms(t0, base + step * k));
            }
            got.push(jb.pop(ms(t0, base + step * k + 1)));
        }
        let played: Vec<&Playout> = got.iter().filter(|p| **p != Playout::Silence).collect();
        assert_eq!(played[0], &Playout::Packet(pkt(100), N), "{got:?}");
        assert_eq!(played[2], &Playout::Recover(pkt(103), N), "{got:?}");
        assert_eq!(jb.stats().recovered, 1);
    }

    #[test]
    fn dtx_pauses_are_not_losses() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        // Two spurts, the timestamps 2 s apart, the sequence numbers not.
        for (i, ts) in [0u32, N, 2 * N, 96_000, 96_000 + N].into_iter().enumerate() {
            jb.sequence(65_534u16.wrapping_add(i as u16));
            jb.push(
                ts,
                pkt(i as u8),
                N,
                t0 + Duration::from_micros(u64::from(ts) * 1000 / 48),
            );
        }
        // (A loss would add a packet, 10 ms.)
        let calm = |jb: &JitterBuffer| (jb.stats().target_ms - MIN_TARGET_MS).abs() < 1.0;
        assert!(calm(&jb), "{:?}", jb.stats());
        // A packet from long ago, or a new stream, is no loss either.
        jb.sequence(30_000);
        assert!(calm(&jb), "{:?}", jb.stats());
        // Nor is the packet after one that came late (out of order).
        jb.sequence(29_999);
        jb.sequence(30_001);
        assert!(calm(&jb), "{:?}", jb.stats());
    }

    #[test]
    fn a_late_packet_raises_the_target_and_still_plays() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), N, t0);
        assert_eq!(jb.pop(t0), Playout::Packet(pkt(0), N));
        // Packet 1 is late: its tick conceals.
        assert_eq!(jb.pop(t0 + TICK), Playout::Conceal(N));
        jb.push(N, pkt(1), N, t0 + TICK + Duration::from_millis(3));
        assert_eq!(jb.stats().late, 1);
        assert!(jb.stats().target_ms >= MIN_TARGET_MS + 10.0);
        assert_eq!(jb.pop(t0 + TICK * 2), Playout::Packet(pkt(1), N));
    }

    /// A packet rebuilt from FEC that turns up afterwards has been played:
    /// it is not played again.
    #[test]
    fn a_rebuilt_packet_that_comes_late_is_not_played_twice() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), N, t0);
        assert_eq!(jb.pop(t0), Playout::Packet(pkt(0), N));
        jb.push(2 * N, pkt(2), N, t0 + TICK);
        assert_eq!(jb.pop(t0 + TICK), Playout::Recover(pkt(2), N));
        jb.push(N, pkt(1), N, t0 + TICK + Duration::from_millis(2));
        assert_eq!(jb.stats().late, 1);
        assert_eq!(jb.pop(t0 + TICK * 2), Playout::Packet(pkt(2), N));
        assert_eq!(jb.pop(t0 + TICK * 3), Playout::Conceal(N));
    }

    #[test]
    fn silence_ends_a_spurt_and_the_next_one_resyncs() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), N, t0);
        assert_eq!(jb.pop(t0), Playout::Packet(pkt(0), N));
        let mut t = t0;
        for _ in 0..MAX_CONCEAL / N {
            t += TICK;
            assert_eq!(jb.pop(t), Playout::Conceal(N));
        }
        t += TICK;
        assert_eq!(jb.pop(t), Playout::Silence);
        // DTX gap of two seconds, then talk again.
        let resume = t0 + Duration::from_secs(2);
        jb.push(96_000, pkt(9), N, resume);
        assert_eq!(
            jb.pop(resume + Duration::from_millis(1)),
            Playout::Packet(pkt(9), N)
        );
    }

    #[test]
    fn jitter_raises_the_hold_within_bounds() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..200u32 {
            let wobble = Duration::from_millis(u64::from(i % 2) * 30);
            jb.push(i * N, pkt(0), N, t0 + TICK * i + wobble);
        }
        let target = jb.stats().target_ms;
        assert!(target > 40.0 && target <= MAX_TARGET_MS, "{target}");
    }

    #[test]
    fn timestamps_wrap_around() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let start = u32::MAX - N;
        for i in 0..3u32 {
            jb.push(start.wrapping_add(i * N), pkt(i as u8), N, t0 + TICK * i);
        }
        let got: Vec<Playout> = (0..3).map(|k| jb.pop(t0 + TICK * k)).collect();
        assert_eq!(
            got,
            vec![
                Playout::Packet(pkt(0), N),
                Playout::Packet(pkt(1), N),
                Playout::Packet(pkt(2), N)
            ]
        );
    }

    /// Timestamps that do not add up to whole packets (a sliver of a gap)
    /// are skipped rather than concealed, and a jump far ahead is followed.
    #[test]
    fn odd_timestamps_are_played_past() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        jb.push(0, pkt(0), N, t0);
        jb.push(N + 7, pkt(1), N, t0);
        jb.push(u32::MAX / 2, pkt(2), N, t0);
        // The jump makes the jitter estimate leap: the hold is the longest.
        let t = t0 + Duration::from_millis(MAX_TARGET_MS as u64);
        assert_eq!(jb.pop(t), Playout::Packet(pkt(0), N));
        assert_eq!(jb.pop(t + TICK), Playout::Packet(pkt(1), N));
        // Twelve hours ahead: a jump, not twelve hours of concealment.
        assert_eq!(jb.pop(t + TICK * 2), Playout::Packet(pkt(2), N));
    }

    #[test]
    fn a_flood_is_bounded() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        for i in 0..200u32 {
            jb.push(i * N, pkt(0), N, t0);
        }
        assert!(jb.buffered() <= MAX_PACKETS);
        // Once the (now maximal) hold is over, the excess is skipped.
        jb.pop(t0 + Duration::from_millis(100));
        let left = jb.buffered() as u32 * N;
        assert!(
            f64::from(left) / TS_PER_MS <= MAX_TARGET_MS + 40.0,
            "{left}"
        );
    }
}
