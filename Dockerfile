# The `tagger` image: web workbench, JSON API, inference and CPU training in one binary.
#
#   docker build -t tagger .
#   docker run --read-only -p 8080:8080 -v tagger-data:/var/lib/tagger tagger demo --addr 0.0.0.0:8080
#
# Stages: `chef` holds the toolchain and cargo-chef; `planner` reduces the workspace to a
# recipe (the manifests and lock file); `deps` builds only the dependencies from that
# recipe, so the layer is reused until Cargo.toml or Cargo.lock change; `build` compiles our
# own crates on top; the runtime stage ships the binary alone on a distroless base (glibc,
# libgcc, CA certificates, no shell, no package manager).
# Keep the Rust version in step with the toolchain the project builds with.
FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS deps
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --package workbench --bin tagger

FROM deps AS build
COPY . .
# The empty data directory is made here because the runtime image has no shell to make it.
RUN cargo build --release --locked --package workbench --bin tagger \
    && mkdir -p /out/var/lib/tagger

# gcr.io/distroless/cc-debian12 carries glibc, libgcc, libstdc++ and the CA certificates that
# `tagger models pull` and a first use of an encoder need to reach the Hugging Face Hub
# (rustls reads the system's certificate store). `nonroot` is user and group 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
# Everything tagger writes — the SQLite file of a laptop install, model versions, the
# encoder cache, the generated encryption key — goes under the data directory, so the root
# filesystem can be mounted read-only with only this path on a volume.
COPY --from=build --chown=65532:65532 /out/var/lib/tagger /var/lib/tagger
COPY --from=build /src/target/release/tagger /usr/local/bin/tagger
ENV TAGGER_DATA_DIR=/var/lib/tagger \
    HF_HOME=/var/lib/tagger/huggingface
VOLUME ["/var/lib/tagger"]
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tagger"]
CMD ["serve", "--addr", "0.0.0.0:8080"]
