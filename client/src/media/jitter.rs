//! An adaptive jitter buffer for one peer's Opus packets.
//!
//! Packets are ordered by RTP timestamp and may be of any length (Hallway
//! sends 10 ms, browsers 20 ms; the caller reads each packet's length from
//! its Opus header). The playout delay is measured from the fastest of the
//! last [`RECENT`] packets: how long after the earliest it could have come
//! a packet plays. At the start of each talk spurt the first packet is held
//! until that delay reaches `target - 10 ms` (one mixer tick adds up to
//! 10 ms more); then the mixer takes packets as it needs samples. The target
//! follows the measured interarrival jitter (RFC 3550's estimator) between
//! 10 and 80 ms, and jumps up when a packet arrives too late to play, to the
//! delay it would have made; it drifts back down when the network is calm.
//!
//! Within a spurt the delay follows the target too, but loosely: each packet
//! that plays says whether to stretch it ([`Stretch`]; the mixer does it
//! with [`super::stretch`], a pitch period at a time) once the delay is
//! more than 20 ms short of the target or 30 ms past it. PESQ marks each
//! stretch in the middle of speech down by about 0.1, so the band is wide.
//!
//! A missing packet is rebuilt from the FEC data in the next packet if that
//! has arrived, else concealed; after 60 ms with nothing buffered the peer
//! is considered silent (DTX) until the next packet starts a new spurt. A
//! gap in the sequence numbers (a packet lost on the way, or overtaken) adds
//! one packet to the target, as NetEq does: the packet after a lost one is
//! then there in time for its FEC to rebuild it.

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

/// Packets the fastest transit is looked for among (1.3 s of ours).
const RECENT: usize = 128;
/// Below the target by more than this, and playout slows down; above by
/// more than this, it speeds up. A spurt starts up to a tick below the
/// target. Wide, because every stretch in the middle of speech costs PESQ
/// (docs/benchmarks.md, "Stretching").
const BELOW_TARGET_MS: f64 = 20.0;
const ABOVE_TARGET_MS: f64 = 30.0;

/// Whether the packet just played should be stretched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stretch {
    /// Play it as it is.
    None,
    /// The delay is well short of the target: play a pitch period more.
    Expand,
    /// The delay is well past the target: play a pitch period less.
    Accelerate,
}

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
    /// Pitch periods played twice, and left out ([`Stretch`]).
    pub expanded: u64,
    pub accelerated: u64,
    pub jitter_ms: f64,
    /// How long after the fastest recent packet's arrival the last packet
    /// played.
    pub delay_ms: f64,
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
    /// The transits (ms) of the last [`RECENT`] packets, a ring.
    transits: [f64; RECENT],
    transit_count: usize,
    jitter_ms: f64,
    late_penalty_ms: f64,
    /// One packet while losses have been seen lately (time for FEC).
    loss_penalty_ms: f64,
    /// The length of the last packet pushed, in ms.
    packet_ms: f64,
    /// The newest RTP sequence number seen.
    newest_seq: Option<u16>,
    last_tick: Option<Instant>,
    /// What the packet last played wants.
    stretch: Stretch,
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
            transits: [0.0; RECENT],
            transit_count: 0,
            jitter_ms: 0.0,
            late_penalty_ms: 0.0,
            loss_penalty_ms: 0.0,
            packet_ms: 20.0,
            newest_seq: None,
            last_tick: None,
            stretch: Stretch::None,
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
        if let Some(slot) = self.transits.get_mut(self.transit_count % RECENT) {
            *slot = transit;
        }
        self.transit_count = self.transit_count.wrapping_add(1);
        let entry = Entry {
            payload,
            samples,
            arrival,
        };
        if let Some(next) = self.next
            && ext < next
        {
            self.stats.late += 1;
            // It missed its tick: aim for a delay it would have made, with a
            // packet to spare, up to the ceiling (stretching gets there
            // within the spurt).
            let needed = transit - self.fastest().unwrap_or(transit) + self.packet_ms;
            let without = self.target_ms() - self.late_penalty_ms;
            self.late_penalty_ms = self
                .late_penalty_ms
                .max(needed - without)
                .clamp(0.0, MAX_TARGET_MS);
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

    /// Whether the packet the last [`JitterBuffer::pop`] returned should be
    /// stretched.
    pub fn stretch(&self) -> Stretch {
        self.stretch
    }

    /// The mixer played `samples` more (or, negative, fewer) than the
    /// packet held.
    pub fn stretched(&mut self, samples: i64) {
        match samples.signum() {
            1 => self.stats.expanded += 1,
            -1 => self.stats.accelerated += 1,
            _ => {}
        }
    }

    /// Whether the packet due next is here (so taking it now loses nothing).
    pub fn next_is_here(&self) -> bool {
        self.next.is_some_and(|n| self.packets.contains_key(&n))
    }

    /// The least transit (ms) among the last [`RECENT`] packets.
    fn fastest(&self) -> Option<f64> {
        let recent = self.transits.get(..self.transit_count.min(RECENT))?;
        let fastest = recent.iter().copied().fold(f64::INFINITY, f64::min);
        fastest.is_finite().then_some(fastest)
    }

    /// How long after the fastest recent packet could have arrived the
    /// sample `ts` plays at `now`, in ms.
    fn delay_ms(&self, ts: i64, now: Instant) -> f64 {
        let Some(fastest) = self.fastest() else {
            return 0.0;
        };
        let playout = now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0
            - ts as f64 / TS_PER_MS;
        playout - fastest
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
        self.stretch = Stretch::None;
        let mut next = match self.next {
            Some(n) => n,
            None => {
                let Some((&first, entry)) = self.packets.first_key_value() else {
                    return Playout::Silence;
                };
                // Held until the target (less the tick to come) after the
                // fastest it could have come: a first packet that came late
                // has waited part of its hold on the way.
                let late_by = self.delay_ms(first, entry.arrival).max(0.0);
                let hold = self.target().saturating_sub(FRAME_DURATION).saturating_sub(
                    Duration::try_from_secs_f64(late_by.min(MAX_TARGET_MS) / 1000.0)
                        .unwrap_or_default(),
                );
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
            let delay = self.delay_ms(next, now);
            self.stats.delay_ms = delay;
            self.stretch = if self.next.is_none() {
                // The spurt's first packet: its hold set the delay.
                Stretch::None
            } else if delay < target - BELOW_TARGET_MS {
                Stretch::Expand
            } else if delay > target + ABOVE_TARGET_MS {
                Stretch::Accelerate
            } else {
                Stretch::None
            };
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
        // It came 3 ms after the fastest; a packet to spare.
        let target = jb.stats().target_ms;
        assert!((13.0..14.0).contains(&target), "{target}");
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

    /// Plays packets arriving at `arrivals[i]` ms (packet i at timestamp
    /// i × N) for `ticks` ticks the way the mixer does; when asked to
    /// stretch and `obey`, it plays a tick more of the packet (skipping the
    /// next tick's pop) or a tick less (popping twice). Returns the stats
    /// and the number of stretches asked for.
    fn mixer(arrivals: &[u64], ticks: u64, obey: bool) -> (JitterStats, usize) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(t0);
        let mut order: Vec<(u64, u32)> = (0..).zip(arrivals).map(|(i, a)| (*a, i)).collect();
        order.sort();
        let mut order = order.into_iter().peekable();
        let (mut asked, mut skip) = (0, false);
        for k in 0..ticks {
            let now = ms(t0, k * 10 + 5);
            while let Some((a, i)) = order.next_if(|(a, _)| ms(t0, *a) <= now) {
                jb.sequence(i as u16);
                jb.push(i * N, pkt(0), N, ms(t0, a));
            }
            if std::mem::take(&mut skip) {
                continue;
            }
            if let Playout::Packet(..) = jb.pop(now) {
                match jb.stretch() {
                    Stretch::None => {}
                    Stretch::Expand => {
                        asked += 1;
                        if obey {
                            jb.stretched(i64::from(N));
                            skip = true;
                        }
                    }
                    Stretch::Accelerate => {
                        asked += 1;
                        if obey && jb.next_is_here() {
                            jb.stretched(-i64::from(N));
                            jb.pop(now);
                        }
                    }
                }
            }
        }
        (jb.stats(), asked)
    }

    /// Packets every 10 ms, each 0 to 30 ms late (a fixed pseudo-random
    /// pattern).
    fn jittered(n: u64) -> Vec<u64> {
        (0..n).map(|i| i * 10 + (i * 7919 + 13) % 31).collect()
    }

    /// A talker who never pauses: the delay must grow within the spurt, by
    /// stretching, for the jittered packets to stop coming too late.
    #[test]
    fn within_a_spurt_the_delay_grows_to_the_target_by_stretching() {
        let arrivals = jittered(1000);
        let (stats, asked) = mixer(&arrivals, 1000, true);
        assert!(asked >= 1 && stats.expanded == asked as u64, "{stats:?}");
        assert!(stats.delay_ms >= 30.0, "{stats:?}");
        let (early, _) = mixer(&arrivals[..300], 300, true);
        // Late packets only while the delay grows, in the first 3 s.
        assert_eq!(stats.late, early.late, "{stats:?}");
        // A mixer that does not stretch goes on losing packets.
        let (unstretched, asked) = mixer(&arrivals, 1000, false);
        assert!(asked > 100, "{asked}");
        assert!(unstretched.late > stats.late + 20, "{unstretched:?}");
    }

    /// The network gets 60 ms faster in the middle of a spurt: playout
    /// speeds up until the delay is back near the target.
    #[test]
    fn a_delay_far_above_the_target_is_brought_down() {
        let arrivals: Vec<u64> = (0..600)
            .map(|i| i * 10 + if i < 200 { 60 } else { 0 })
            .collect();
        let (stats, _) = mixer(&arrivals, 600, true);
        assert!(stats.accelerated >= 1, "{stats:?}");
        assert!(
            stats.delay_ms <= stats.target_ms + ABOVE_TARGET_MS,
            "{stats:?}"
        );
        assert_eq!(stats.expanded, 0, "{stats:?}");
        let (unstretched, _) = mixer(&arrivals, 600, false);
        assert!(unstretched.delay_ms > 60.0, "{unstretched:?}");
    }

    /// A calm network: nothing is stretched.
    #[test]
    fn a_steady_stream_is_not_stretched() {
        let arrivals: Vec<u64> = (0..500).map(|i| i * 10 + 2).collect();
        let (stats, asked) = mixer(&arrivals, 500, true);
        assert_eq!(asked, 0, "{stats:?}");
        assert!(stats.played >= 498 && stats.late == 0, "{stats:?}");
    }
}
