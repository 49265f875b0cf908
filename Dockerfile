# Build stage. Dependencies compile in a layer of their own (keyed by Cargo.toml and
# Cargo.lock only), so a change to the bridge's code rebuilds just the bridge.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches migrations \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs && echo 'fn main() {}' > benches/mapping.rs \
    && cargo build --release --locked --bin webengage-bridge \
    && rm -rf src benches
COPY . .
# The stand-ins above are older than the real sources, but make sure cargo sees the change.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin webengage-bridge

# Run stage: the binary, the example mappings and CA roots for HTTPS to WebEngage.
FROM debian:bookworm-slim
# Unpinned: the image takes Debian's security updates for its CA roots at each build.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 bridge
WORKDIR /app
COPY --from=build /src/target/release/webengage-bridge /usr/local/bin/webengage-bridge
COPY mappings ./mappings
USER 10001
ENV BRIDGE_LISTEN=0.0.0.0:8080 BRIDGE_MAPPINGS_DIR=/app/mappings
EXPOSE 8080
# Ready, not just listening: the binary asks its own /readyz (the image has no curl).
# A `worker` container: CMD ["webengage-bridge", "healthcheck", "--listen", "127.0.0.1:8081"].
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s CMD ["webengage-bridge", "healthcheck"]
ENTRYPOINT ["webengage-bridge"]
CMD ["serve"]
