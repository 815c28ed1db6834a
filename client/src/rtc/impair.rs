//! A test option, and the one place where it acts: receive-side loss and
//! jitter on incoming voice. Each audio packet read from a remote track
//! (in [`super::tracks`], before the mixer's jitter buffer) is dropped or
//! held back here, as a bad network would, so that speech quality can be
//! measured through the whole real pipeline (`benches/speech.rs`). Seeded:
//! the same spec drops the same packets on every run.
//!
//! `loss=P` drops that share of packets; with `burst=N` losses come N in a
//! row (a burst starts with the probability that makes the long-run share
//! P). `jitter=MS` delays each packet by a uniform 0..MS ms, so packets can
//! arrive out of order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    /// Share of packets lost, 0..1.
    pub loss: f64,
    /// Losses come this many in a row.
    pub burst: u32,
    /// Each packet is delayed by 0..this many ms.
    pub jitter_ms: u32,
    pub seed: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad impairment {0:?}: use loss=P (0 to 0.9), burst=N (1 to 50), jitter=MS (0 to 1000), \
     seed=S, separated by commas"
)]
pub struct ImpairmentError(String);

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            burst: 1,
            jitter_ms: 0,
            seed: 1,
        }
    }
}

impl std::str::FromStr for Impairment {
    type Err = ImpairmentError;

    fn from_str(s: &str) -> Result<Impairment, ImpairmentError> {
        let err = || ImpairmentError(s.to_owned());
        let mut spec = Impairment::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(err)?;
            match key {
                "loss" => {
                    spec.loss = value
                        .parse()
                        .ok()
                        .filter(|p| (0.0..=0.9).contains(p))
                        .ok_or_else(err)?;
                }
                "burst" => {
                    spec.burst = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=50).contains(n))
                        .ok_or_else(err)?;
                }
                "jitter" => {
                    spec.jitter_ms = value
                        .parse()
                        .ok()
                        .filter(|ms| *ms <= 1000)
                        .ok_or_else(err)?;
                }
                "seed" => spec.seed = value.parse().map_err(|_| err())?,
                _ => return Err(err()),
            }
        }
        Ok(spec)
    }
}

/// What happens to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Delivered after this long (zero: at once).
    Deliver(Duration),
}

/// The impairment's state for one incoming stream.
#[derive(Debug)]
pub struct Impairer {
    spec: Impairment,
    rng: StdRng,
    /// Packets still to drop in the current burst.
    dropping: u32,
    /// The chance that a delivered packet starts a burst.
    start: f64,
}

impl Impairer {
    pub fn new(spec: Impairment) -> Impairer {
        // Bursts of b starting with chance q after a delivered packet drop
        // q·b / (1 + q·(b - 1)) of all packets; solved for that share = loss.
        let b = f64::from(spec.burst);
        let start = spec.loss / (b - spec.loss * (b - 1.0));
        Impairer {
            spec,
            rng: StdRng::seed_from_u64(spec.seed),
            dropping: 0,
            start,
        }
    }

    /// What happens to the next packet.
    pub fn fate(&mut self) -> Fate {
        if self.dropping > 0 {
            self.dropping -= 1;
            return Fate::Drop;
        }
        if self.spec.loss > 0.0 && self.rng.random_bool(self.start.clamp(0.0, 1.0)) {
            self.dropping = self.spec.burst.saturating_sub(1);
            return Fate::Drop;
        }
        let ms = if self.spec.jitter_ms == 0 {
            0.0
        } else {
            self.rng.random_range(0.0..f64::from(self.spec.jitter_ms))
        };
        Fate::Deliver(Duration::from_secs_f64(ms / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn losses(spec: &str, n: usize) -> Vec<bool> {
        let mut i = Impairer::new(spec.parse().unwrap());
        (0..n).map(|_| i.fate() == Fate::Drop).collect()
    }

    #[test]
    fn random_and_burst_loss_drop_the_share_asked_for() {
        for spec in ["loss=0.05", "loss=0.1", "loss=0.2", "loss=0.1,burst=3"] {
            let dropped = losses(spec, 100_000);
            let share = dropped.iter().filter(|d| **d).count() as f64 / 1e5;
            let want: f64 = spec.parse::<Impairment>().unwrap().loss;
            assert!((share - want).abs() < 0.01, "{spec}: {share}");
        }
        // Bursts: every run of losses is a multiple of 3 long.
        let dropped = losses("loss=0.1,burst=3", 10_000);
        let mut run = 0;
        for d in dropped.iter().chain([&false]) {
            if *d {
                run += 1;
            } else {
                assert_eq!(run % 3, 0, "a run of {run}");
                run = 0;
            }
        }
        // Seeded: the same spec, the same packets; another seed, others.
        assert_eq!(
            losses("loss=0.1,seed=4", 1000),
            losses("loss=0.1,seed=4", 1000)
        );
        assert_ne!(
            losses("loss=0.1,seed=4", 1000),
            losses("loss=0.1,seed=5", 1000)
        );
        assert!(losses("", 1000).iter().all(|d| !d));
    }

    #[test]
    fn jitter_delays_each_packet_up_to_its_bound() {
        let mut i = Impairer::new("jitter=30".parse().unwrap());
        let delays: Vec<Duration> = (0..1000)
            .map(|_| match i.fate() {
                Fate::Deliver(d) => d,
                Fate::Drop => panic!("no loss asked for"),
            })
            .collect();
        assert!(delays.iter().all(|d| *d < Duration::from_millis(30)));
        let mean = delays.iter().sum::<Duration>() / 1000;
        assert!((13..17).contains(&mean.as_millis()), "{mean:?}");
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "loss=1",
            "loss=-0.1",
            "burst=0",
            "jitter=5000",
            "seed=x",
            "x=1",
            "loss",
        ] {
            let e = bad.parse::<Impairment>().unwrap_err();
            assert!(e.to_string().contains("loss=P"), "{bad}: {e}");
        }
    }
}
