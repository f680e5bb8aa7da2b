# Stand-in for the official `nginx:1.27` image (scripts/test-docker only). What
# docker-compose.yml relies on: `nginx` on the PATH with the realip module, `curl` for the health
# check, /etc/nginx/mime.types, and a master process started as root. Debian bookworm's nginx is
# 1.22: older than 1.27, so a directive our template needs from a newer release would fail here
# first (the template is also checked with `nginx -t` by server/tests/compose.rs).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
