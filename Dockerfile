# Build stage: the whole dependency tree compiles here (no database needed: queries are checked at run time by the tests).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin webengage-bridge

# Run stage: a small image with the binary, the example mappings and CA roots for HTTPS to WebEngage.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 bridge
WORKDIR /app
COPY --from=build /src/target/release/webengage-bridge /usr/local/bin/webengage-bridge
COPY mappings ./mappings
USER bridge
ENV BRIDGE_LISTEN=0.0.0.0:8080 BRIDGE_MAPPINGS_DIR=/app/mappings
EXPOSE 8080
# bash (not dash) has /dev/tcp: the port answers once the server listens.
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["webengage-bridge"]
CMD ["serve"]
