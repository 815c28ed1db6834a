# Shared helpers for the scripts in this folder. Source it; do not run it.

# Installs the Debian/Ubuntu packages that are missing, without asking.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        echo "Please install these packages: ${missing[*]}" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "Installing ${missing[*]} ..." >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Makes sure a Rust toolchain is on PATH (installing rustup's stable one if not).
ensure_rust() {
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    if command -v cargo >/dev/null; then
        return 0
    fi
    ensure_packages curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
}

# Everything the workspace needs to build and run: a C toolchain (SQLite),
# and the X11 and Vulkan libraries the desktop app opens at run time (Mesa's
# software Vulkan, so it also runs where there is no GPU).
ensure_build_deps() {
    # cmake builds libopus; libasound2-dev is ALSA for cpal (audio devices);
    # nasm gives openh264 its assembly (about 3x faster H.264); libclang-dev
    # is for bindgen in nokhwa's V4L2 bindings (cameras).
    ensure_packages build-essential pkg-config curl cmake nasm libclang-dev libasound2-dev libx11-6 \
        libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 libvulkan1 mesa-vulkan-drivers
    # The NAT tests build home routers in network namespaces (ip, nft) and
    # make them forget their mappings (conntrack).
    ensure_packages iproute2 nftables conntrack
    ensure_rust
}

# A virtual display for tests and screenshots when there is no real one:
# Xvfb with Mesa's software Vulkan. Sets DISPLAY and WGPU_BACKEND.
ensure_display() {
    if [ -n "${DISPLAY:-}" ]; then
        return 0
    fi
    ensure_packages xvfb xauth
    local n=99
    while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do
        n=$((n + 1))
    done
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB_PID=$!
    export DISPLAY=":$n"
    export WGPU_BACKEND=vulkan
    for _ in $(seq 50); do
        [ -e "/tmp/.X11-unix/X$n" ] && break
        sleep 0.1
    done
}

stop_display() {
    if [ -n "${XVFB_PID:-}" ]; then
        kill "$XVFB_PID" 2>/dev/null || true
    fi
}

repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}
