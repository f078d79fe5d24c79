# One image with every Dionysia binary; docker-compose.yml picks the command.
# The runtime image carries the same GStreamer plugins as scripts/setup.sh,
# and the edge embeds the same hls.js (npm ci from edge/player's lock file).

FROM rust:1.95-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      cmake clang pkg-config libssl-dev nodejs npm \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci --prefix edge/player --no-audit --no-fund \
    && cargo build --release --workspace --bins \
    && mkdir /out \
    && cp target/release/router-api target/release/discovery target/release/origin \
          target/release/edge target/release/loadtest /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates curl libssl3 openssl \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# The origins' output volume and the edge's TLS pair (made by edge-cert in
# docker-compose.yml): owned by the unprivileged user they run as.
RUN mkdir -p /hls /tls && chown nobody /hls /tls
USER nobody
