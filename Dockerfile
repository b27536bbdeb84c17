# DIP container image: `dip serve` by default; `dip worker` (or any dip command) as the command.
#   docker build -t dip .
#   docker compose -f deploy/compose.yaml up --scale worker=3    (the scaled-out set-up)
# Stage 1 compiles TypeScript with the dev dependencies; stage 2 holds only dist/, schema/ and
# the production dependencies (npm ci --omit=dev), and runs as the unprivileged user `node`.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: this stage only compiles (the `prepare` script would run tsc before src/ is here).
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY schema ./schema
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DIP_LOG_LEVEL=info
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts skips `prepare` (tsc is a dev dependency); better-sqlite3's own install step
# (a prebuilt binary, or a compile where none fits) runs through `npm rebuild`.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && npm ci --omit=dev --ignore-scripts \
  && npm rebuild better-sqlite3 \
  && npm cache clean --force \
  && apt-get purge -y python3 make g++ && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist ./dist
COPY --from=build /src/schema ./schema
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# The project (dip.yaml and what it names) is mounted at /project; per-container scratch (staging,
# read cache, DuckDB spill) goes to /scratch (see deploy/project/dip.yaml).
RUN mkdir -p /project /scratch && chown node:node /project /scratch
USER node
WORKDIR /project
EXPOSE 8420
# serve: GET /health; a worker (no HTTP): `dip status` reaches the catalog (deploy/healthcheck.mjs).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["node", "/app/deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/dist/cli/main.js", "-p", "/project"]
CMD ["serve", "--host", "0.0.0.0"]
