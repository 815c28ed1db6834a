//! Walking on a map, the same for the app and the bot: one step time, one
//! step rule, the shortest walkable path, and `x,y` routes from the command
//! line.

use hallway_shared::{Facing, MapModel, TilePos};
use std::time::Duration;

/// Time per step: 6.7 steps a second, under the server's default 8.
pub const STEP: Duration = Duration::from_millis(150);

/// A `--walk`/`--path` route that is not a list of `x,y` pairs.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not x,y")]
pub struct RouteError(String);

/// The tile one step from `p`. At the edge of the `i32` plane (a position
/// only a broken server would send) the step goes nowhere.
pub fn step(p: TilePos, facing: Facing) -> TilePos {
    match facing {
        Facing::Up => TilePos::new(p.x, p.y.saturating_sub(1)),
        Facing::Down => TilePos::new(p.x, p.y.saturating_add(1)),
        Facing::Left => TilePos::new(p.x.saturating_sub(1), p.y),
        Facing::Right => TilePos::new(p.x.saturating_add(1), p.y),
    }
}

/// What one step attempt does: the tile to walk to (if any) and the facing.
pub fn plan_step(map: &MapModel, from: TilePos, want: Facing) -> (Option<TilePos>, Facing) {
    let to = step(from, want);
    (map.is_walkable(to).then_some(to), want)
}

/// The direction of the first step from `from` towards `to` along walkable
/// tiles (breadth-first), if there is a way.
pub fn direction_towards(map: &MapModel, from: TilePos, to: TilePos) -> Option<Facing> {
    use std::collections::{HashMap, VecDeque};
    if from == to || !map.is_walkable(to) {
        return None;
    }
    let mut prev: HashMap<TilePos, TilePos> = HashMap::from([(from, from)]);
    let mut queue = VecDeque::from([from]);
    while let Some(p) = queue.pop_front() {
        if p == to {
            let mut cur = to;
            while let Some(&back) = prev.get(&cur)
                && back != from
            {
                cur = back;
            }
            return [Facing::Up, Facing::Down, Facing::Left, Facing::Right]
                .into_iter()
                .find(|f| step(from, *f) == cur);
        }
        for f in [Facing::Up, Facing::Down, Facing::Left, Facing::Right] {
            let n = step(p, f);
            if map.is_walkable(n) && !prev.contains_key(&n) {
                prev.insert(n, p);
                queue.push_back(n);
            }
        }
    }
    None
}

/// Parses a route, `"x,y x,y ..."`.
pub fn parse_route(s: &str) -> Result<Vec<TilePos>, RouteError> {
    s.split_whitespace()
        .map(|pair| {
            let bad = || RouteError(pair.to_owned());
            let (x, y) = pair.split_once(',').ok_or_else(bad)?;
            let x = x.trim().parse().map_err(|_| bad())?;
            let y = y.trim().parse().map_err(|_| bad())?;
            Ok(TilePos::new(x, y))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bad_ones_say_which_pair() {
        let r = parse_route(" 1,2  3,-4 ").unwrap();
        assert_eq!(r, vec![TilePos::new(1, 2), TilePos::new(3, -4)]);
        let e = parse_route("1,2 x").unwrap_err();
        assert_eq!(e.to_string(), "\"x\" is not x,y");
    }

    #[test]
    fn a_step_at_the_edge_of_the_plane_goes_nowhere() {
        let corner = TilePos::new(i32::MIN, i32::MAX);
        assert_eq!(step(corner, Facing::Left), corner);
        assert_eq!(step(corner, Facing::Down), corner);
        assert_eq!(
            step(corner, Facing::Right),
            TilePos::new(i32::MIN + 1, i32::MAX)
        );
    }
}
