# roomstorm image: `chat-server` and `loadgen` with the chat page and the scenarios, for
# docker-compose.yml (the chat cluster and the `load` profile) or a plain `docker run`.
#
# scripts/test-docker builds it and runs docker-compose.yml on a real engine; server/tests/compose.rs
# and loadgen/tests/compose_cmd.rs check in seconds what can be checked without one (every COPY
# source exists and is not ignored, every workspace crate is copied, the commands are real).

# --- the socket.io browser client, from web/package-lock.json --------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- the Rust binaries ------------------------------------------------------------------------
# Same Debian release as the runtime image (glibc); Rust at least the workspace's rust-version.
# The release profile keeps debug info for profiling; the image keeps only the symbols (names in
# backtraces and perf), which makes the binaries about a sixth of the size (32 MB instead of 185).
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: the manifests with stub sources. This layer is rebuilt
# only when Cargo.toml or Cargo.lock files change, not when our sources do.
COPY Cargo.toml Cargo.lock ./
COPY protocol/Cargo.toml protocol/
COPY client/Cargo.toml client/
COPY server/Cargo.toml server/
COPY loadgen/Cargo.toml loadgen/
COPY results/Cargo.toml results/
COPY reports/Cargo.toml reports/
RUN for crate in protocol client server loadgen results reports; do \
        mkdir -p "$crate/src" \
        && echo 'fn main() {}' > "$crate/src/main.rs" \
        && : > "$crate/src/lib.rs"; \
    done \
    && cargo build --release --locked -p chat-server -p loadgen \
    && rm -rf protocol/src client/src server/src loadgen/src results/src reports/src

# Then the sources. They are touched so cargo sees them newer than the stub build.
COPY protocol protocol
COPY client client
COPY server server
COPY loadgen loadgen
COPY results results
COPY reports reports
# server/src/nginx.rs compiles the nginx template in.
COPY deploy deploy
RUN find protocol client server loadgen results reports -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p chat-server -p loadgen \
    && strip --strip-debug target/release/chat-server target/release/loadgen \
    && install -m 0755 target/release/chat-server target/release/loadgen /usr/local/bin/

# --- the runtime image --------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# curl: the compose health checks (`curl --fail-early` over every worker's /healthz).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 roomstorm \
    && useradd --uid 1000 --gid roomstorm --create-home --shell /usr/sbin/nologin roomstorm
WORKDIR /app
COPY --from=builder /usr/local/bin/chat-server /usr/local/bin/loadgen /usr/local/bin/
COPY deploy/docker/run-scenario /usr/local/bin/run-scenario
COPY web /app/web
COPY --from=web /web/node_modules/socket.io-client/dist /app/web/node_modules/socket.io-client/dist
COPY scenarios /app/scenarios
# runs/: loadgen's default output folder (docker-compose.yml mounts the host's ./runs here).
# nginx/: where the nginx-config service writes nginx's config; a fresh named volume mounted
# here takes this folder's owner, so the non-root user can write it.
RUN chmod 0755 /usr/local/bin/run-scenario \
    && mkdir -p /app/runs /app/nginx \
    && chown roomstorm:roomstorm /app/runs /app/nginx
ENV CHAT_WEB_DIR=/app/web
USER roomstorm
EXPOSE 3000 6001 9000
# One worker with the in-process bus: `docker run -p 3000:3000 IMAGE` serves a chat page.
CMD ["chat-server", "worker", "--listen", "0.0.0.0:3000", "--bus", "local"]
