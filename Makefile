# Booking ledger. `make run` starts everything on this machine; `make test`
# runs every test against real PostgreSQL.

export PATH := /usr/local/go/bin:$(PATH)

DATABASE_URL ?= postgres://booking:booking@127.0.0.1:5432/booking?sslmode=disable
# Tests create (and drop) their own databases through this connection.
TEST_DATABASE_URL ?= $(patsubst %/booking?sslmode=disable,%/postgres?sslmode=disable,$(DATABASE_URL))
HTTP_ADDR ?= :8080
REDIS_URL ?= redis://127.0.0.1:6379/0
export DATABASE_URL TEST_DATABASE_URL HTTP_ADDR REDIS_URL

# make run: people confirm (pay for) their holds on the page themselves;
# CONFIRM_DELAY=1s simulates a payment that confirms every hold after 1 s.
CONFIRM_DELAY ?= 0

GO ?= go
BIN := bin

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: services
services: ## make sure PostgreSQL and Redis run and the database exists (apt installs when missing)
	@scripts/services.sh

.PHONY: build
build: ## build bookingd, bookingctl, analytics and bookingbench into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

# The web app's dependencies, installed again when the lockfile changes.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@scripts/services.sh node
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: web
web: web/node_modules/.package-lock.json ## build the web app into web/dist/app, which bookingd embeds (Node.js and npm, installed when missing)
	cd web && npm run build

.PHONY: run
# run makes a JWT secret once for this checkout in .dev/ (not committed).
run: services web build ## start PostgreSQL and Redis if needed, migrate, seed demo data, build the web app, run bookingd on :8080
	$(BIN)/bookingctl migrate
	$(BIN)/bookingctl seed-demo
	@test -s .dev/jwt-secret || { mkdir -p .dev && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > .dev/jwt-secret; }
	JWT_SECRET=$$(cat .dev/jwt-secret) CONFIRM_DELAY=$(CONFIRM_DELAY) $(BIN)/bookingd

.PHONY: test
test: web ## vet, the web app's component tests, then every Go test (with the race detector) and the browser end-to-end test against real PostgreSQL, Redis and NATS
	@scripts/services.sh postgres redis nats chromium
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	cd web && npm test
	WEB_E2E=1 $(GO) test -race -timeout 15m ./...

.PHONY: fuzz
fuzz: ## fuzz the domain's decide function for a minute
	$(GO) test -run '^$$' -fuzz FuzzDecide -fuzztime 60s ./domain/

.PHONY: bench
bench: ## throughput of the seed's locking design vs the ledger vs the HTTP API (spread and hot, about a minute each), a replay of 1,000,000 events, then an on-sale on the real bookingd with 10,000 live feeds
	@scripts/services.sh postgres redis
	$(GO) run ./cmd/bookingbench -scenario all -target all

.PHONY: clean
clean: ## remove built binaries
	rm -rf $(BIN)
