# Stand-in for the official `redis:7` image (scripts/test-docker only; no registry is reachable
# on the project's machines). What docker-compose.yml relies on: `redis-server` taking its
# settings as flags, and `redis-cli` for the health check. Debian bookworm's Redis is 7.0.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
# The official image builds Redis with protected mode off (it listens on the container's
# network, where the other services connect from); Debian's binary has it on, which refuses
# every client not on loopback when no password is set. The wrapper makes the default match.
COPY redis-server.sh /usr/local/bin/redis-server
RUN chmod 0755 /usr/local/bin/redis-server
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
CMD ["redis-server"]
