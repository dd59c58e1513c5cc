#!/usr/bin/env bash
# Each library crate builds with only the backends an app asks for: none, or one of `redis`,
# `sqlite`, `postgres` (the defaults turn on all three; `ringfence serve` uses all three),
# ringfence-accounts with `mongodb` alone, ringfence-aspnet with and without `redis`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A warning (an import only one backend uses, say) fails the check too. Through the output
# rather than RUSTFLAGS=-D warnings, which would rebuild every dependency a second time.
check() {
    local out
    out=$(cargo check --quiet "$@" 2>&1) || { echo "$out"; return 1; }
    if grep -q '^warning' <<<"$out"; then
        echo "$out"
        return 1
    fi
}

crates=(-p ringfence-keyring -p ringfence-sessions -p ringfence-accounts -p ringfence-axum -p ringfence-server)
for features in "" redis sqlite postgres; do
    echo "== cargo check ${crates[*]} --all-targets --no-default-features --features '$features'"
    check "${crates[@]}" --all-targets --no-default-features --features "$features"
done
echo "== cargo check -p ringfence-accounts --all-targets --no-default-features --features mongodb"
check -p ringfence-accounts --all-targets --no-default-features --features mongodb
for features in "" redis; do
    echo "== cargo check -p ringfence-aspnet --all-targets --no-default-features --features '$features'"
    check -p ringfence-aspnet --all-targets --no-default-features --features "$features"
done
