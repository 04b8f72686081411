# syntax=docker/dockerfile:1
# Build with the official Rust image; run on a minimal non-root image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin vpcguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/vpcguard /usr/local/bin/vpcguard
COPY config/vpcguard.yaml config/policy.yaml /etc/vpcguard/
USER 65532:65532
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/vpcguard"]
CMD ["run", "-c", "/etc/vpcguard/vpcguard.yaml"]
