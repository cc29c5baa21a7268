# One image for both programs, `etcd-topology operator` and `etcd-topology proxy`, and the backup Jobs and
# restore init containers the operator runs (`etcd-topology snapshot`).
#   docker build -t etcd-topology:0.1.0 .
# Where no image can be pulled, hack/build-image.sh assembles NODE_IMAGE and ETCD_IMAGE locally (from
# Debian's packages, the npm registry and the Go-built etcd) and builds this with them.
# The version label, the chart's appVersion and package.json's version agree (src/version.test.ts checks).
# Build: compile src/ to dist/ with the dev dependencies. Runtime: Node 24, production dependencies,
# dist/ and package.json only, as a non-root user; nothing in it needs a shell.
ARG NODE_IMAGE=node:24-bookworm-slim
# etcdutl comes from the upstream etcd image of the version the project is tested with: the restore
# init container (`etcd-topology snapshot restore`) runs it to turn a backup into a data directory.
ARG ETCD_IMAGE=gcr.io/etcd-development/etcd:v3.6.16

FROM ${ETCD_IMAGE} AS etcd

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# npm scripts run through hack/run.sh, which checks for Node >= 22 with hack/node.sh (bash is in the image).
COPY hack/run.sh hack/node.sh ./hack/
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="etcd-topology" \
      org.opencontainers.image.description="etcd-topology operator and node-local etcd proxy" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY --from=etcd /usr/local/bin/etcdutl /usr/local/bin/etcdutl
# The distroless "nonroot" identity; files stay owned by root, so the app cannot change them.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli.js"]
