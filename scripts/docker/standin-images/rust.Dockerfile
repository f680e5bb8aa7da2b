# Stand-in for the official `rust:<version>-slim-bookworm` image (scripts/test-docker only): the
# machine's own Rust toolchain (rustc and cargo, the version the tag names), with what the
# official slim image adds for building (gcc and libc6-dev to link, ca-certificates for
# crates.io), and the same CARGO_HOME and PATH.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$PATH
RUN mkdir -p /usr/local/cargo/bin \
    && rustc --version && cargo --version
