#!/usr/bin/env bash
# The project's test command: makes sure the real servers the tests start are installed, then
# runs every test of the workspace. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh -p ringfence-sessions`, `scripts/test.sh -- --nocapture`).
#
# The tests never use the distribution's services: ringfence-testkit starts its own
# redis-server, PostgreSQL, HAProxy and aiosmtpd on free loopback ports in temporary directories.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

have_postgres() {
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        return 0
    fi
    # Debian keeps the server programs off PATH, in /usr/lib/postgresql/<version>/bin.
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$initdb" && -x "$(dirname "$initdb")/postgres" ]] && return 0
    done
    return 1
}

# Debian package -> the check that says it is present.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
have_postgres || missing+=(postgresql)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# Validates deploy/docker-compose.yml (no Docker engine needed) when Compose v2 is absent.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

# The SMTP server of the mail tests (ringfence-testkit's SmtpServer runs Debian's interpreter).
have_aiosmtpd() { [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; }
have_aiosmtpd || missing+=(python3-aiosmtpd)

# OpenSSL's headers and pkg-config: webauthn-rs (passkeys) builds on the openssl crate.
have_openssl_dev() { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl; }
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
have_openssl_dev || missing+=(libssl-dev)

# Go, to build FerretDB for the MongoDB tests (below) when it is not built yet.
[[ -x "${XDG_CACHE_HOME:-$HOME/.cache}/ringfence/ferretdb/ferretdb" ]] ||
    command -v go >/dev/null 2>&1 || missing+=(golang-go)

# Headless Chromium and its WebDriver server for the browser test (tests/browser.rs).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

# Debian's Python with venv, for the schemathesis run of tests/openapi.rs (installed from PyPI
# into a virtualenv below, never into the system's Python).
system_python=/usr/bin/python3
[[ -x $system_python ]] || system_python="$(command -v python3 || true)"
have_venv() { [[ -n $system_python ]] && "$system_python" -c 'import ensurepip, venv' >/dev/null 2>&1; }
have_venv || missing+=(python3 python3-venv)

if ((${#missing[@]} > 0)); then
    sudo_cmd=()
    can_install=false
    if command -v apt-get >/dev/null 2>&1; then
        if ((EUID == 0)); then
            can_install=true
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo_cmd=(sudo -n)
            can_install=true
        fi
    fi
    if ! $can_install; then
        say "missing packages: ${missing[*]}"
        say "install them (Debian/Ubuntu: apt-get install ${missing[*]}) or rerun as root / with passwordless sudo"
        exit 1
    fi

    say "installing: ${missing[*]}"
    # Keep the packages' own services from starting on install when nothing else decides that
    # already; the tests run their own servers on their own ports.
    policy=/usr/sbin/policy-rc.d
    created_policy=false
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
        "${sudo_cmd[@]}" chmod 755 "$policy"
        created_policy=true
    fi
    remove_policy() { if $created_policy; then "${sudo_cmd[@]}" rm -f "$policy"; fi; }
    trap remove_policy EXIT

    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo_cmd[@]}" apt-get update -q ||
        ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        say "could not install: ${missing[*]}; install them by hand and rerun"
        exit 1
    fi
    remove_policy
    trap - EXIT

    # Check again: a package may be named differently on this distribution.
    still=()
    command -v redis-server >/dev/null 2>&1 || still+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || still+=(redis-tools)
    command -v haproxy >/dev/null 2>&1 || still+=(haproxy)
    have_postgres || still+=(postgresql)
    command -v wrk >/dev/null 2>&1 || still+=(wrk)
    command -v chromium >/dev/null 2>&1 || still+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || still+=(chromium-driver)
    have_aiosmtpd || still+=(python3-aiosmtpd)
    have_openssl_dev || still+=(libssl-dev pkg-config)
    [[ -x $system_python ]] || system_python="$(command -v python3 || true)"
    have_venv || still+=(python3-venv)
    if ((${#still[@]} > 0)); then
        say "still missing after installing: ${still[*]}"
        exit 1
    fi
fi

# schemathesis (PyPI), pinned, in a virtualenv of its own under the user's cache: the OpenAPI
# fuzzing test of tests/openapi.rs runs it against a live node (it finds it through
# RINGFENCE_SCHEMATHESIS, or at this default place).
schemathesis_version=4.32.5
schemathesis_venv="${XDG_CACHE_HOME:-$HOME/.cache}/ringfence/schemathesis-venv"
if [[ "$("$schemathesis_venv/bin/st" --version 2>/dev/null || true)" != *" $schemathesis_version" ]]; then
    say "installing schemathesis $schemathesis_version into $schemathesis_venv"
    mkdir -p "$(dirname "$schemathesis_venv")"
    if ! "$system_python" -m venv --clear "$schemathesis_venv" ||
        ! "$schemathesis_venv/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$schemathesis_version"; then
        say "could not install schemathesis $schemathesis_version (PyPI) into $schemathesis_venv"
        exit 1
    fi
fi
export RINGFENCE_SCHEMATHESIS="$schemathesis_venv/bin/st"

# FerretDB (a MongoDB wire-protocol server, Apache-2.0) on its SQLite backend is the MongoDB the
# tests of the MongoDB stores start (ringfence-testkit's MongoServer): no MongoDB server package
# is obtainable here. Built once with Go from the Go module proxy into the user's cache. Not `go install …/cmd/ferretdb@VERSION`: the released
# module lacks the generated build/version/version.txt, and a binary built from it panics at
# start; so the module's source is built in a scratch copy with that file written, as
# upstream's build instructions say.
ferretdb_version=v1.24.2
ferretdb_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ringfence/ferretdb"
build_ferretdb() {
    local module scratch
    module="$(go mod download -json "github.com/FerretDB/FerretDB@$ferretdb_version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || return 1
    [[ -d $module ]] || return 1
    scratch="$(mktemp -d)"
    cp -r "$module/." "$scratch/"
    chmod -R u+w "$scratch"
    echo "$ferretdb_version" >"$scratch/build/version/version.txt"
    mkdir -p "$ferretdb_dir"
    (cd "$scratch" && GOFLAGS=-mod=mod go build -buildvcs=false -o "$ferretdb_dir/ferretdb" ./cmd/ferretdb)
    local status=$?
    rm -rf "$scratch"
    return $status
}
# A run without it would pass while testing nothing of MongoDB, so it fails instead, unless
# RINGFENCE_SKIP_MONGODB=1 says that is wanted (the MongoDB tests then say they are skipped).
no_ferretdb() {
    if [[ ${RINGFENCE_SKIP_MONGODB:-} == 1 ]]; then
        say "$1; RINGFENCE_SKIP_MONGODB=1: the MongoDB tests will be skipped"
    else
        say "$1: the MongoDB stores cannot be tested (set RINGFENCE_SKIP_MONGODB=1 to run without them)"
        exit 1
    fi
}
# FerretDB's module asks for Go 1.24; Go 1.21 and later fetch that toolchain themselves
# (GOTOOLCHAIN), older ones cannot build it at all.
go_can_build_ferretdb() {
    local version major minor
    version="$(go env GOVERSION 2>/dev/null)" || return 1
    version="${version#go}"
    major="${version%%.*}"
    minor="${version#*.}"
    minor="${minor%%.*}"
    [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
    ((major > 1 || (major == 1 && minor >= 21)))
}
if [[ "$("$ferretdb_dir/ferretdb" --version 2>/dev/null || true)" != *"version: $ferretdb_version"* ]]; then
    if command -v go >/dev/null 2>&1 && ! go_can_build_ferretdb; then
        no_ferretdb "$(go version) is too old to build FerretDB $ferretdb_version (Go 1.21 or newer, which fetches the 1.24 toolchain it asks for)"
    elif command -v go >/dev/null 2>&1; then
        say "building FerretDB $ferretdb_version into $ferretdb_dir with $(go version) (once; takes minutes)"
        if ! (cd /tmp && build_ferretdb); then
            no_ferretdb "could not build FerretDB $ferretdb_version"
        fi
    else
        no_ferretdb "no Go toolchain to build FerretDB $ferretdb_version"
    fi
fi
[[ -x "$ferretdb_dir/ferretdb" ]] && export RINGFENCE_FERRETDB="$ferretdb_dir/ferretdb"

# `cargo test --workspace -p X` would still build and test everything: let -p narrow it.
scope=(--workspace)
for arg in "$@"; do
    case $arg in
    --) break ;;
    -p | -p* | --package | --package=*) scope=() ;;
    esac
done
# The examples as programs (tests/examples.rs and tests/aspnet.rs run them as processes; under
# --all-targets cargo builds them only as test executables).
cargo build --quiet -p ringfence --examples
# Every target (libraries, binaries, integration tests, examples, benchmarks in test mode), then
# the documentation examples, which --all-targets leaves out.
cargo test "${scope[@]}" --all-targets "$@"
# With arguments (a chosen test, a package) the run is a partial one: cargo refuses --doc beside
# target selectors, and the binary-only root package has no doctests.
if [[ $# -eq 0 ]]; then
    cargo test "${scope[@]}" --doc
fi
