// Package deploy holds what runs the booking ledger outside a developer's
// machine; it has no Go API. Its tests check the files below without Docker
// or a cluster: they load them with the libraries the real tools use and
// compare them with what the code reads.
//
//   - Dockerfile (and Dockerfile.dockerignore): a multi-stage build of static
//     bookingd and bookingctl binaries on distroless, non-root. The tests run
//     its go build line themselves and check the binaries are static.
//   - docker-compose.yml, nginx.conf, postgres/: PostgreSQL 15 with a
//     streaming replica, Redis, NATS JetStream, a one-shot migration, bookingd
//     split by role (api ×2 behind nginx, projector, worker). Secrets come
//     from deploy/.env (see .env.example).
//   - k8s/: a kustomize base: a Deployment per role with probes, resources and
//     a locked-down security context, the API's Service, autoscaler and
//     disruption budget, a headless Service for scraping, the migration Job.
//     secret.example.yaml shows the Secret they read; it is not a resource.
//   - grafana/: the dashboard of every metric bookingd exports.
//
// See README.md in this directory for the commands.
package deploy
