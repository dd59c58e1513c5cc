#!/usr/bin/env bash
# The libraries build with the minimum supported Rust version the workspace states
# (`rust-version` in Cargo.toml): installs that toolchain with rustup when missing and checks
# every library crate with it, in its own target directory (`cargo check`: about 4 minutes on
# 2 cores from nothing). CI runs it. A machine where rustup cannot fetch the toolchain says so
# loudly and skips the check rather than failing for the network.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
if [[ -z $msrv ]]; then
    echo "no rust-version in Cargo.toml" >&2
    exit 1
fi
if ! rustup toolchain install "$msrv" --profile minimal --no-self-update >/dev/null; then
    echo "WARNING: MSRV NOT CHECKED: rustup could not install Rust $msrv here" >&2
    exit 0
fi
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/msrv" cargo "+$msrv" check --locked \
    -p ringfence-keyring -p ringfence-sessions -p ringfence-accounts -p ringfence-axum \
    -p ringfence-mail -p ringfence-aspnet -p ringfence-server
echo "the libraries build with Rust $msrv"
