# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ringfence \
 && cp target/release/ringfence /usr/local/bin/ringfence

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/ringfence --create-home ringfence
COPY --from=build /usr/local/bin/ringfence /usr/local/bin/ringfence
USER ringfence
WORKDIR /var/lib/ringfence
ENV RINGFENCE_DATA_DIR=/var/lib/ringfence \
    RINGFENCE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# SIGTERM drains: /readyz turns 503, requests in flight finish, exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1"]
ENTRYPOINT ["ringfence"]
CMD ["serve"]
