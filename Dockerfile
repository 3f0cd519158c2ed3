# pgmux container image: built with the same cargo command CI uses, run as a non-root
# user on a slim Debian.
#   docker build -t pgmux .
#   docker run -e PGMUX_DATABASES__APP__HOST=db -e PGMUX_USERS__APP__PASSWORD=secret pgmux
# Settings: /etc/pgmux/pooler.toml (mount your own over it), and PGMUX_* variables on top
# of that file (PGMUX_DATABASES__<NAME>__HOST, PGMUX_USERS__<NAME>__PASSWORD, ...).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/pgmux /usr/local/bin/pgmux

FROM debian:bookworm-slim
# curl only for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin pgmux
COPY --from=build /usr/local/bin/pgmux /usr/local/bin/pgmux
COPY deploy/docker/pooler.toml /etc/pgmux/pooler.toml
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# 6432: PostgreSQL clients; 9127: /health, /ready and metrics (metrics_listen).
EXPOSE 6432 9127
# SIGTERM drains: stop accepting, finish running transactions, close idle clients.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:9127/health || exit 1
ENTRYPOINT ["pgmux"]
CMD ["--config", "/etc/pgmux/pooler.toml"]
