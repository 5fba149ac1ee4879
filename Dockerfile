# syntax=docker/dockerfile:1
#
# The `billing` binary in a small image. FIRST DRAFT: there is no Docker engine on the project's
# machines, so this file has not been built yet.
#
#   docker build -t kanizsa-billing .
#   docker run --rm -p 8000:8000 -v billing-data:/var/lib/billing/data kanizsa-billing
#
# Without DATABASE_URL the container uses the embedded SQLite store under /var/lib/billing/data
# (mount a volume there to keep it). On a first start with no API key, the admin key is printed
# once on stdout: read it with `docker logs <container>`.

# --- build ---------------------------------------------------------------------------------------
# The bookworm variant of the Rust image, so the binary links against the same glibc as the
# runtime image below.
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Only what the build needs (keeps target/ and data/ of a work tree out of the context).
COPY Cargo.toml Cargo.lock ./
COPY ledger ledger
COPY commands commands
COPY projections projections
COPY gateways gateways
COPY api api
# Embedded into the binary at compile time by sqlx::migrate!.
COPY migrations migrations

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api \
    && cp target/release/billing /usr/local/bin/billing

# --- run -----------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# CA roots for the HTTPS gateways to come (Stripe, PayPal); nothing else is needed at run time:
# SQLite is compiled into the binary, and this build talks to PostgreSQL without TLS (sqlx
# feature `tls-none`), so no OpenSSL either.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid billing --home-dir /var/lib/billing --create-home billing \
    && mkdir -p /var/lib/billing/data \
    && chown -R billing:billing /var/lib/billing

COPY --from=builder /usr/local/bin/billing /usr/local/bin/billing

USER billing
WORKDIR /var/lib/billing
ENV BILLING_ADDR=0.0.0.0:8000 \
    BILLING_DATA_DIR=/var/lib/billing/data \
    RUST_LOG=info
VOLUME ["/var/lib/billing/data"]
EXPOSE 8000

ENTRYPOINT ["billing"]
CMD ["serve"]
