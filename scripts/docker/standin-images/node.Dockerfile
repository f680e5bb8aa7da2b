# Stand-in for the official `node:20-bookworm-slim` image (scripts/test-docker only): the
# machine's own Node.js 20 and npm (the `nodejs` package the tests install), where the official
# image has them (/usr/local/bin, /usr/local/lib/node_modules/npm). Our Dockerfile's `web` stage
# runs `npm ci` with it.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
