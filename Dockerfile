# syntax=docker/dockerfile:1
# Build with the official Rust image; run on a minimal non-root image.
FROM rust:1.95-bookworm AS build
# The etcd store (docs/contract.md §11): etcd-client's build script runs protoc and needs the
# protobuf well-known types.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler=3.21.* libprotobuf-dev=3.21.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --features etcd --bin vpcguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/vpcguard /usr/local/bin/vpcguard
COPY config/vpcguard.yaml config/policy.yaml /etc/vpcguard/
USER 65532:65532
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/vpcguard"]
CMD ["run", "-c", "/etc/vpcguard/vpcguard.yaml"]
