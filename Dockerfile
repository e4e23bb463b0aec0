# Two stages: build the release binary, then ship it alone on a slim base.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tagger

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/tagger tagger && mkdir -p /var/lib/tagger && chown tagger /var/lib/tagger
COPY --from=build /src/target/release/tagger /usr/local/bin/tagger
USER tagger
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tagger"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data-dir", "/var/lib/tagger"]
