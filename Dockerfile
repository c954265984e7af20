# keygate: multi-stage build, small non-root runtime image.
#   docker build -t keygate .
#   docker run -p 8080:8080 -p 127.0.0.1:8081:8081 -v keygate:/var/lib/keygate keygate
# Publish the admin port (8081) only where admins can reach it.

FROM rust:1-bookworm AS build
WORKDIR /src
# Manifests first so the dependency layer is cached across source changes.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --bin keygate \
 && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin keygate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/keygate --shell /usr/sbin/nologin keygate \
 && mkdir -p /var/lib/keygate /etc/keygate \
 && chown keygate:keygate /var/lib/keygate
COPY --from=build /src/target/release/keygate /usr/local/bin/keygate
COPY config/ /etc/keygate/
USER keygate
WORKDIR /var/lib/keygate
# Inside a container the listeners must bind all interfaces to be reachable;
# logs are JSON even under `docker run -t`, for the log pipeline.
ENV KEYGATE_LOG_FORMAT=json \
    KEYGATE_SERVER__LISTEN=0.0.0.0:8080 \
    KEYGATE_ADMIN__LISTEN=0.0.0.0:8081 \
    KEYGATE_STORE__URL=sqlite:///var/lib/keygate/keygate.db
VOLUME ["/var/lib/keygate"]
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["keygate"]
CMD ["serve"]
