//! How much one move costs the proximity graph, for crowds of different sizes
//! and densities. A move should cost the same whether the space holds a
//! hundred people or ten thousand, as long as the crowd around the mover is
//! the same.
//!
//! Run: `cargo bench -p hallway-shared --bench proximity`

use hallway_shared::TilePos;
use hallway_shared::UserId;
use hallway_shared::proximity::{PeerGraph, ProximityConfig, Spot};
use std::time::Instant;

/// A tiny deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn run(users: usize, density: f32, moves: usize) -> (f64, f64) {
    // Side length so that there are `density` people per tile on average.
    let side = ((users as f32 / density).sqrt().ceil() as i32).max(1);
    let mut rng = Lcg(42);
    let mut g = PeerGraph::new(ProximityConfig::default());
    let mut pos: Vec<TilePos> = (0..users)
        .map(|_| {
            TilePos::new(
                (rng.next() % side as u32) as i32,
                (rng.next() % side as u32) as i32,
            )
        })
        .collect();
    for (i, p) in pos.iter().enumerate() {
        g.upsert(UserId(i as i64), Spot::new(*p, None));
    }
    let start = Instant::now();
    let mut changed = 0usize;
    for _ in 0..moves {
        let i = rng.next() as usize % users;
        let (dx, dy) = [(1, 0), (-1, 0), (0, 1), (0, -1)][rng.next() as usize % 4];
        let p = TilePos::new(
            (pos[i].x + dx).clamp(0, side - 1),
            (pos[i].y + dy).clamp(0, side - 1),
        );
        pos[i] = p;
        changed += g
            .upsert(UserId(i as i64), Spot::new(p, None))
            .affected()
            .len();
    }
    let per_move = start.elapsed().as_secs_f64() / moves as f64;
    (per_move * 1e6, changed as f64 / moves as f64)
}

fn main() {
    println!("proximity graph: cost of one move (release build, one core)");
    println!(
        "{:>8} {:>14} {:>12} {:>16}",
        "users", "people/tile", "µs/move", "lists changed"
    );
    for &(users, density) in &[
        (100, 0.02),
        (1_000, 0.02),
        (10_000, 0.02),
        (100, 0.2),
        (1_000, 0.2),
        (10_000, 0.2),
    ] {
        let (us, changed) = run(users, density, 200_000);
        println!("{users:>8} {density:>14} {us:>12.2} {changed:>16.2}");
    }
}
