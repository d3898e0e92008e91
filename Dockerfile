# One image for every CryptoPill binary; compose picks the command.
# golang: the go directive of go.work. VERSION stamps the binaries (service.Version) through the
# Makefile's -ldflags "-X cryptopill.dev/jobs/libs/service.version=$(VERSION)":
#   docker build --build-arg VERSION=$(git describe --always --dirty) .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
ARG VERSION=dev
# The golang image's own caches: modules under its GOPATH (/go/pkg/mod), builds in root's GOCACHE.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make build VERSION=${VERSION}

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates wget && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/ /usr/local/bin/
USER 65534:65534
