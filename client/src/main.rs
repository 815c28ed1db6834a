//! `hallway`: the desktop app (not built yet; see the README).

fn main() {
    eprintln!(
        "hallway {}: the desktop app is not built yet; run the server with `scripts/run`.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
