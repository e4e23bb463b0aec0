# Two stages: build the release binary, then ship it alone on a slim base.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tagger

FROM debian:bookworm-slim
# CA certificates: `tagger models pull` and a first use of an encoder reach the Hugging Face
# Hub over HTTPS (rustls reads the system's certificate store).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/tagger tagger && mkdir -p /var/lib/tagger && chown tagger /var/lib/tagger
# The encoder cache lives on the data volume, writable when the root filesystem is not.
ENV HF_HOME=/var/lib/tagger/huggingface
COPY --from=build /src/target/release/tagger /usr/local/bin/tagger
USER tagger
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tagger"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data-dir", "/var/lib/tagger"]
