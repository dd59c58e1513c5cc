#!/usr/bin/env bash
# Writes the secrets deploy/docker-compose.yml needs into deploy/.env (Compose reads that file
# from the compose file's directory): POSTGRES_PASSWORD and REDIS_PASSWORD, 256 random bits each,
# URL-safe (they go into connection URLs unescaped). The file is created 0600 and never committed
# (.gitignore). A value already there is kept: PostgreSQL takes its password only when its volume
# is first initialized, so a new one would lock the nodes out of an existing database.
#
#   deploy/compose-secrets.sh                 then: docker compose -f deploy/docker-compose.yml up --build
#   COMPOSE_ENV_FILE=/path/.env deploy/compose-secrets.sh    (another file)
set -euo pipefail

env_file=${COMPOSE_ENV_FILE:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.env"}

say() { printf 'compose-secrets: %s\n' "$*" >&2; }

# 32 bytes from the kernel's CSPRNG as 64 hex digits: URL-safe, no tool beyond coreutils.
secret() { od -An -vtx1 -N32 /dev/urandom | tr -d ' \n'; }

umask 077
touch "$env_file"
chmod 600 "$env_file"
for name in POSTGRES_PASSWORD REDIS_PASSWORD; do
    if grep -q "^${name}=." "$env_file"; then
        say "$name already set in $env_file; kept"
    else
        printf '%s=%s\n' "$name" "$(secret)" >>"$env_file"
        say "$name generated into $env_file"
    fi
done
