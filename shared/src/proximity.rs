//! Who connects to whom. The server owns a [`PeerGraph`] per space and tells each
//! client its current peers; clients use the same [`ProximityConfig`] for volume.
//!
//! The rules:
//! - Outside meeting zones, two people link when they come within
//!   `enter_radius` tiles (Euclidean) and unlink only beyond `leave_radius`
//!   (hysteresis, so standing on the edge does not flap).
//! - Everyone inside the same zone links to everyone else inside it, whatever
//!   the distance, and to nobody outside it.
//! - Nobody has more than `max_peers` links (`zone_max_peers` inside a zone);
//!   links are chosen nearest first. Links are edges of an undirected graph, so
//!   the lists are symmetric by construction: if A lists B, B lists A.
//! - In each linked pair exactly one side offers: the lower user id.
//!
//! A change of one person's position costs work proportional to their
//! neighbours: a spatial grid finds people within `leave_radius`, a zone index
//! finds zone mates.

use crate::{TilePos, UserId, ZoneId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Proximity rules of one space. Sent to clients in `welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProximityConfig {
    /// Link when the distance is at most this many tiles.
    pub enter_radius: f32,
    /// Unlink only when the distance is greater than this many tiles.
    pub leave_radius: f32,
    /// Voice is at full volume within this many tiles (see [`crate::volume`]).
    pub full_volume_radius: f32,
    /// The most links one person has outside zones.
    pub max_peers: usize,
    /// The most links one person has inside a meeting zone.
    pub zone_max_peers: usize,
    /// How long after unlinking the two may still exchange signaling messages.
    pub signal_grace_ms: u64,
}

impl Default for ProximityConfig {
    fn default() -> Self {
        Self {
            enter_radius: 5.0,
            leave_radius: 6.0,
            full_volume_radius: 2.0,
            max_peers: 6,
            zone_max_peers: 12,
            signal_grace_ms: 3000,
        }
    }
}

/// Where someone stands, as far as proximity cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spot {
    pub pos: TilePos,
    pub zone: Option<ZoneId>,
}

impl Spot {
    pub fn new(pos: TilePos, zone: Option<ZoneId>) -> Self {
        Self { pos, zone }
    }
}

/// A newcomer takes the place of someone's farthest link only if it is at least
/// this many tiles nearer than that link, so that a crowd at the cap does not
/// swap links at every step. The same margin protects the mover's own links.
pub const EVICTION_MARGIN: f32 = 1.0;

/// May `a` and `b` be linked? `linked` says whether they are linked now, which
/// widens the allowed distance from `enter_radius` to `leave_radius`.
pub fn link_allowed(cfg: &ProximityConfig, a: Spot, b: Spot, linked: bool) -> bool {
    match (a.zone, b.zone) {
        (Some(za), Some(zb)) => za == zb,
        (None, None) => {
            let d = a.pos.distance(b.pos);
            d <= cfg.enter_radius || (linked && d <= cfg.leave_radius)
        }
        _ => false,
    }
}

/// The most links someone standing at `spot` may have.
pub fn peer_cap(cfg: &ProximityConfig, spot: Spot) -> usize {
    if spot.zone.is_some() {
        cfg.zone_max_peers
    } else {
        cfg.max_peers
    }
}

/// In a linked pair, the side with the lower id sends the WebRTC offer.
pub fn is_offerer(me: UserId, peer: UserId) -> bool {
    me < peer
}

/// What one update did to the graph. Pairs are `(lower id, higher id)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphChanges {
    pub added: Vec<(UserId, UserId)>,
    pub removed: Vec<(UserId, UserId)>,
}

impl GraphChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Everyone whose peer list changed, sorted, without repeats.
    pub fn affected(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .added
            .iter()
            .chain(&self.removed)
            .flat_map(|&(a, b)| [a, b])
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a < b { (a, b) } else { (b, a) }
}

#[derive(Clone, Debug)]
struct Node {
    spot: Spot,
    peers: Vec<UserId>,
}

/// The proximity graph of one space, kept up to date one move at a time.
#[derive(Clone, Debug)]
pub struct PeerGraph {
    cfg: ProximityConfig,
    cell: i32,
    nodes: HashMap<UserId, Node>,
    /// Users outside any zone, by grid cell.
    grid: HashMap<(i32, i32), Vec<UserId>>,
    /// Users inside each zone.
    zones: HashMap<ZoneId, Vec<UserId>>,
}

impl PeerGraph {
    pub fn new(cfg: ProximityConfig) -> Self {
        let cell = cfg.leave_radius.ceil().max(1.0) as i32;
        Self {
            cfg,
            cell,
            nodes: HashMap::new(),
            grid: HashMap::new(),
            zones: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ProximityConfig {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn spot(&self, user: UserId) -> Option<Spot> {
        self.nodes.get(&user).map(|n| n.spot)
    }

    /// The current peers of `user` (empty if unknown).
    pub fn peers(&self, user: UserId) -> &[UserId] {
        self.nodes.get(&user).map_or(&[], |n| n.peers.as_slice())
    }

    pub fn are_linked(&self, a: UserId, b: UserId) -> bool {
        self.peers(a).contains(&b)
    }

    /// Places `user` at `spot` (joining or moving) and relinks around them.
    pub fn upsert(&mut self, user: UserId, spot: Spot) -> GraphChanges {
        let mut changes = GraphChanges::default();
        if let Some(old) = self.nodes.get(&user).map(|n| n.spot) {
            if old == spot {
                return changes;
            }
            self.unindex(user, old);
            if let Some(n) = self.nodes.get_mut(&user) {
                n.spot = spot;
            }
        } else {
            self.nodes.insert(
                user,
                Node {
                    spot,
                    peers: Vec::new(),
                },
            );
        }
        self.index(user, spot);

        let cap = peer_cap(&self.cfg, spot);
        // Nearest first, but a current link counts as EVICTION_MARGIN nearer
        // than it is, so that the mover's own list does not flap either.
        let mut candidates = self.candidates(user, spot);
        let rank = |&(d, v): &(f32, UserId)| {
            if self.are_linked(user, v) {
                d - EVICTION_MARGIN
            } else {
                d
            }
        };
        candidates.sort_by(|a, b| rank(a).total_cmp(&rank(b)).then(a.1.cmp(&b.1)));

        let mut keep: Vec<UserId> = Vec::with_capacity(cap);
        let mut freed: Vec<UserId> = Vec::new();
        for (d, v) in candidates {
            if keep.len() == cap {
                break;
            }
            if self.are_linked(user, v) {
                keep.push(v);
                continue;
            }
            let v_spot = self.nodes[&v].spot;
            if !link_allowed(&self.cfg, spot, v_spot, false) {
                continue;
            }
            if self.peers(v).len() >= peer_cap(&self.cfg, v_spot) {
                // v is full: take the place of its farthest link if clearly nearer.
                let Some((far_d, far)) = self
                    .peers(v)
                    .iter()
                    .map(|&x| (v_spot.pos.distance(self.nodes[&x].spot.pos), x))
                    .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                else {
                    continue;
                };
                if far_d <= d + EVICTION_MARGIN {
                    continue;
                }
                self.unlink(v, far, &mut changes);
                freed.push(far);
            }
            self.link(user, v, &mut changes);
            keep.push(v);
        }

        let dropped: Vec<UserId> = self.nodes[&user]
            .peers
            .iter()
            .copied()
            .filter(|p| !keep.contains(p))
            .collect();
        for v in dropped {
            self.unlink(user, v, &mut changes);
            freed.push(v);
        }

        freed.sort_unstable();
        freed.dedup();
        for v in freed {
            if v != user {
                self.fill(v, &mut changes);
            }
        }
        changes
    }

    /// Takes `user` out of the space; their former peers pick up others if they can.
    pub fn remove(&mut self, user: UserId) -> GraphChanges {
        let mut changes = GraphChanges::default();
        let Some(node) = self.nodes.get(&user) else {
            return changes;
        };
        let spot = node.spot;
        let peers = node.peers.clone();
        for &v in &peers {
            self.unlink(user, v, &mut changes);
        }
        self.unindex(user, spot);
        self.nodes.remove(&user);
        for v in peers {
            self.fill(v, &mut changes);
        }
        changes
    }

    /// Checks every invariant; returns a description of the first one broken.
    /// Costs O(users²): for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (&u, n) in &self.nodes {
            let cap = peer_cap(&self.cfg, n.spot);
            if n.peers.len() > cap {
                return Err(format!("{u} has {} peers, cap {cap}", n.peers.len()));
            }
            for &v in &n.peers {
                let Some(m) = self.nodes.get(&v) else {
                    return Err(format!("{u} lists unknown {v}"));
                };
                if !m.peers.contains(&u) {
                    return Err(format!("{u} lists {v} but not the other way"));
                }
                if !link_allowed(&self.cfg, n.spot, m.spot, true) {
                    return Err(format!("{u} and {v} are linked but may not be"));
                }
            }
            let mut sorted = n.peers.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != n.peers.len() {
                return Err(format!("{u} lists a peer twice"));
            }
        }
        for (&u, n) in &self.nodes {
            for (&v, m) in &self.nodes {
                if u < v
                    && !n.peers.contains(&v)
                    && link_allowed(&self.cfg, n.spot, m.spot, false)
                    && n.peers.len() < peer_cap(&self.cfg, n.spot)
                    && m.peers.len() < peer_cap(&self.cfg, m.spot)
                {
                    return Err(format!("{u} and {v} could link and both have room"));
                }
            }
        }
        Ok(())
    }

    /// Links `user` to the nearest people who may link and have room, up to its cap.
    fn fill(&mut self, user: UserId, changes: &mut GraphChanges) {
        let Some(spot) = self.spot(user) else { return };
        let cap = peer_cap(&self.cfg, spot);
        if self.peers(user).len() >= cap {
            return;
        }
        let mut candidates = self.candidates(user, spot);
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, v) in candidates {
            if self.peers(user).len() >= cap {
                break;
            }
            let v_spot = self.nodes[&v].spot;
            if !self.are_linked(user, v)
                && link_allowed(&self.cfg, spot, v_spot, false)
                && self.peers(v).len() < peer_cap(&self.cfg, v_spot)
            {
                self.link(user, v, changes);
            }
        }
    }

    /// Everyone who might link with `user` at `spot`, with their distance.
    fn candidates(&self, user: UserId, spot: Spot) -> Vec<(f32, UserId)> {
        let mut out = Vec::new();
        let mut consider = |v: UserId| {
            if v == user {
                return;
            }
            let v_spot = self.nodes[&v].spot;
            if link_allowed(&self.cfg, spot, v_spot, true) {
                out.push((spot.pos.distance(v_spot.pos), v));
            }
        };
        match spot.zone {
            Some(zone) => {
                for &v in self.zones.get(&zone).into_iter().flatten() {
                    consider(v);
                }
            }
            None => {
                // Saturating: at the edge of the i32 plane the search box is
                // clipped instead of overflowing (nobody can stand beyond it).
                let r = self.cfg.leave_radius.ceil() as i32;
                let (x0, y0) = self.cell_of(TilePos::new(
                    spot.pos.x.saturating_sub(r),
                    spot.pos.y.saturating_sub(r),
                ));
                let (x1, y1) = self.cell_of(TilePos::new(
                    spot.pos.x.saturating_add(r),
                    spot.pos.y.saturating_add(r),
                ));
                for cy in y0..=y1 {
                    for cx in x0..=x1 {
                        for &v in self.grid.get(&(cx, cy)).into_iter().flatten() {
                            consider(v);
                        }
                    }
                }
            }
        }
        out
    }

    fn cell_of(&self, p: TilePos) -> (i32, i32) {
        (p.x.div_euclid(self.cell), p.y.div_euclid(self.cell))
    }

    fn index(&mut self, user: UserId, spot: Spot) {
        let bucket = match spot.zone {
            Some(zone) => self.zones.entry(zone).or_default(),
            None => {
                let cell = self.cell_of(spot.pos);
                self.grid.entry(cell).or_default()
            }
        };
        bucket.push(user);
    }

    fn unindex(&mut self, user: UserId, spot: Spot) {
        let cell = self.cell_of(spot.pos);
        let (bucket, emptied) = match spot.zone {
            Some(zone) => {
                let b = self.zones.get_mut(&zone);
                (b, Some(zone))
            }
            None => (self.grid.get_mut(&cell), None),
        };
        let Some(bucket) = bucket else { return };
        bucket.retain(|&v| v != user);
        if bucket.is_empty() {
            match emptied {
                Some(zone) => self.zones.remove(&zone),
                None => self.grid.remove(&cell),
            };
        }
    }

    fn link(&mut self, a: UserId, b: UserId, changes: &mut GraphChanges) {
        if let Some(n) = self.nodes.get_mut(&a) {
            n.peers.push(b);
        }
        if let Some(n) = self.nodes.get_mut(&b) {
            n.peers.push(a);
        }
        let p = pair(a, b);
        // A link removed and re-added within one update is no change at all.
        if let Some(i) = changes.removed.iter().position(|&r| r == p) {
            changes.removed.swap_remove(i);
        } else {
            changes.added.push(p);
        }
    }

    fn unlink(&mut self, a: UserId, b: UserId, changes: &mut GraphChanges) {
        if let Some(n) = self.nodes.get_mut(&a) {
            n.peers.retain(|&x| x != b);
        }
        if let Some(n) = self.nodes.get_mut(&b) {
            n.peers.retain(|&x| x != a);
        }
        let p = pair(a, b);
        if let Some(i) = changes.added.iter().position(|&r| r == p) {
            changes.added.swap_remove(i);
        } else {
            changes.removed.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(i: i64) -> UserId {
        UserId(i)
    }

    fn open(x: i32, y: i32) -> Spot {
        Spot::new(TilePos::new(x, y), None)
    }

    fn zoned(x: i32, y: i32, z: u32) -> Spot {
        Spot::new(TilePos::new(x, y), Some(ZoneId(z)))
    }

    #[test]
    fn links_at_enter_radius_keeps_in_band_drops_beyond_leave() {
        let mut g = PeerGraph::new(ProximityConfig::default());
        g.upsert(u(1), open(0, 0));
        g.upsert(u(2), open(6, 0));
        assert!(!g.are_linked(u(1), u(2)), "6 tiles is too far to enter");
        let c = g.upsert(u(2), open(5, 0));
        assert_eq!(c.added, vec![(u(1), u(2))]);
        assert!(g.are_linked(u(1), u(2)), "5 tiles enters");
        let c = g.upsert(u(2), open(6, 0));
        assert!(c.is_empty(), "6 tiles stays linked");
        assert!(g.are_linked(u(2), u(1)));
        let c = g.upsert(u(2), open(7, 0));
        assert_eq!(c.removed, vec![(u(1), u(2))]);
        assert!(g.peers(u(1)).is_empty() && g.peers(u(2)).is_empty());
    }

    #[test]
    fn diagonal_distance_is_euclidean() {
        let mut g = PeerGraph::new(ProximityConfig::default());
        g.upsert(u(1), open(0, 0));
        g.upsert(u(2), open(4, 3));
        assert!(g.are_linked(u(1), u(2)), "(4,3) is exactly 5 tiles away");
        g.upsert(u(3), open(4, 4));
        assert!(!g.are_linked(u(1), u(3)), "(4,4) is 5.66 tiles away");
    }

    #[test]
    fn cap_is_symmetric_in_a_cluster_of_eight() {
        let mut g = PeerGraph::new(ProximityConfig::default());
        for i in 0..8 {
            g.upsert(u(i), open(10 + (i as i32 % 3), 10 + (i as i32 / 3)));
            g.check_invariants().unwrap();
        }
        for i in 0..8 {
            let peers = g.peers(u(i));
            assert!(peers.len() <= 6, "{i} has {}", peers.len());
            for p in peers {
                assert!(g.peers(*p).contains(&u(i)));
            }
        }
        // With 8 mutually-near people and a cap of 6, the graph is as full as it can be.
        let degrees: Vec<usize> = (0..8).map(|i| g.peers(u(i)).len()).collect();
        assert!(degrees.iter().sum::<usize>() >= 40, "degrees {degrees:?}");
    }

    #[test]
    fn zone_links_inside_and_excludes_outside() {
        let mut g = PeerGraph::new(ProximityConfig::default());
        g.upsert(u(1), zoned(0, 0, 1));
        g.upsert(u(2), zoned(9, 9, 1));
        g.upsert(u(3), open(1, 1));
        g.upsert(u(4), zoned(1, 2, 2));
        assert!(g.are_linked(u(1), u(2)), "same zone links at any distance");
        assert!(!g.are_linked(u(1), u(3)), "zone excludes the outside");
        assert!(!g.are_linked(u(1), u(4)), "different zones do not link");
        // Leaving the zone next to someone outside links them instead.
        g.upsert(u(1), open(0, 0));
        assert!(g.are_linked(u(1), u(3)));
        assert!(!g.are_linked(u(1), u(2)));
        g.check_invariants().unwrap();
    }

    #[test]
    fn zone_cap_is_twelve() {
        let mut g = PeerGraph::new(ProximityConfig::default());
        for i in 0..14 {
            g.upsert(u(i), zoned(i as i32, 0, 0));
        }
        g.check_invariants().unwrap();
        assert!((0..14).all(|i| g.peers(u(i)).len() <= 12));
        // Twelve people in a room all hear each other.
        let mut g = PeerGraph::new(ProximityConfig::default());
        for i in 0..12 {
            g.upsert(u(i), zoned(i as i32, 0, 0));
        }
        assert!((0..12).all(|i| g.peers(u(i)).len() == 11));
    }

    #[test]
    fn nearer_newcomer_takes_the_farthest_slot() {
        let cfg = ProximityConfig {
            max_peers: 1,
            ..ProximityConfig::default()
        };
        let mut g = PeerGraph::new(cfg);
        g.upsert(u(1), open(0, 0));
        g.upsert(u(2), open(5, 0));
        assert!(g.are_linked(u(1), u(2)));
        // 4.5 tiles nearer than u2 is beyond the margin: u3 takes the slot.
        g.upsert(u(3), open(0, 1));
        assert!(g.are_linked(u(1), u(3)));
        assert!(!g.are_linked(u(1), u(2)));
        // Within the margin nothing is taken.
        g.upsert(u(4), open(1, 0));
        assert!(g.are_linked(u(1), u(3)));
        g.check_invariants().unwrap();
    }

    #[test]
    fn the_mover_keeps_its_link_within_the_margin() {
        let cfg = ProximityConfig {
            max_peers: 1,
            ..ProximityConfig::default()
        };
        let mut g = PeerGraph::new(cfg);
        g.upsert(u(2), open(4, 0));
        g.upsert(u(3), open(0, 4));
        g.upsert(u(1), open(1, 0));
        assert!(g.are_linked(u(1), u(2)));
        // Now both are 3.16 tiles away: no reason to switch.
        g.upsert(u(1), open(1, 1));
        assert!(g.are_linked(u(1), u(2)));
        // u3 is 1.1 tiles nearer than u2: beyond the margin, so switch.
        g.upsert(u(1), open(0, 1));
        assert!(g.are_linked(u(1), u(3)));
        g.check_invariants().unwrap();
    }

    #[test]
    fn removal_frees_slots_for_others() {
        let cfg = ProximityConfig {
            max_peers: 1,
            ..ProximityConfig::default()
        };
        let mut g = PeerGraph::new(cfg);
        g.upsert(u(1), open(0, 0));
        g.upsert(u(2), open(1, 0));
        g.upsert(u(3), open(2, 0));
        assert!(g.are_linked(u(1), u(2)));
        assert!(g.peers(u(3)).is_empty());
        let c = g.remove(u(1));
        assert!(g.are_linked(u(2), u(3)));
        assert_eq!(c.affected(), vec![u(1), u(2), u(3)]);
        g.check_invariants().unwrap();
    }

    #[test]
    fn offerer_is_the_lower_id() {
        assert!(is_offerer(u(1), u(2)));
        assert!(!is_offerer(u(2), u(1)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(i64, i32, i32),
        Remove(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0i64..24, 0i32..24, 0i32..24).prop_map(|(u, x, y)| Op::Put(u, x, y)),
            1 => (0i64..24).prop_map(Op::Remove),
        ]
    }

    /// Positions anywhere in the i32 plane, often at its very edges.
    fn anywhere() -> impl Strategy<Value = i32> {
        prop_oneof![
            Just(i32::MIN),
            Just(i32::MAX),
            Just(i32::MIN + 1),
            Just(i32::MAX - 1),
            -8i32..8,
            any::<i32>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Coordinates a client could send, the extremes included, neither panic
        /// nor break the invariants.
        #[test]
        fn extreme_positions_keep_the_invariants(
            ops in proptest::collection::vec((0i64..8, anywhere(), anywhere()), 1..60),
        ) {
            let mut g = PeerGraph::new(ProximityConfig::default());
            for (user, x, y) in ops {
                g.upsert(UserId(user), open(x, y));
                if let Err(e) = g.check_invariants() {
                    return Err(TestCaseError::fail(e));
                }
            }
        }

        /// Whatever people do, the lists stay symmetric, capped, allowed and maximal.
        #[test]
        fn graph_invariants_hold(ops in proptest::collection::vec(op(), 1..200),
                                 max_peers in 1usize..8) {
            let cfg = ProximityConfig { max_peers, zone_max_peers: max_peers + 2, ..ProximityConfig::default() };
            let mut g = PeerGraph::new(cfg);
            // A 6×6 meeting zone in one corner.
            let zone_of = |x: i32, y: i32| (x < 6 && y < 6).then_some(ZoneId(0));
            for op in ops {
                let changes = match op {
                    Op::Put(user, x, y) => g.upsert(UserId(user), Spot::new(TilePos::new(x, y), zone_of(x, y))),
                    Op::Remove(user) => g.remove(UserId(user)),
                };
                if let Err(e) = g.check_invariants() {
                    return Err(TestCaseError::fail(e));
                }
                for (a, b) in &changes.added {
                    prop_assert!(g.are_linked(*a, *b));
                }
                for (a, b) in &changes.removed {
                    prop_assert!(!g.are_linked(*a, *b));
                }
            }
        }
    }
}
