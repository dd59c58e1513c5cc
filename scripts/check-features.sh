#!/usr/bin/env bash
# Each library crate builds with only the backends an app asks for: none, or one of `redis`,
# `sqlite`, `postgres` (the defaults turn on all three; `ringfence serve` uses all three), and
# ringfence-accounts with `mongodb` alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

crates=(-p ringfence-keyring -p ringfence-sessions -p ringfence-accounts)
for features in "" redis sqlite postgres; do
    echo "== cargo check ${crates[*]} --no-default-features --features '$features'"
    cargo check --quiet "${crates[@]}" --no-default-features --features "$features"
done
echo "== cargo check -p ringfence-accounts --no-default-features --features mongodb"
cargo check --quiet -p ringfence-accounts --no-default-features --features mongodb
