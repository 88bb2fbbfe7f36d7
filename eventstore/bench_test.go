package eventstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
)

// BenchmarkAppend compares the two ways of getting events to watermill
// consumers with no dual-write gap, each append in its own transaction from
// 8 concurrent writers on distinct streams:
//
//   - topic: the events table is the watermill topic (WatermillSchema), so an
//     append is one INSERT;
//   - outbox: the append also publishes the events through watermill-sql's
//     publisher into its own Postgres topic table in the same transaction.
//
// Run: go test -run '^$' -bench Append -benchtime 5s ./eventstore/
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"topic", "outbox"} {
		b.Run(mode, func(b *testing.B) {
			pool, _ := pgtest.NewDB(b)
			ctx := context.Background()
			if mode == "outbox" {
				_, err := pool.Exec(ctx, `CREATE TABLE "watermill_events_outbox" (
					"offset" BIGSERIAL, "uuid" VARCHAR(36) NOT NULL, "created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
					"payload" JSON DEFAULT NULL, "metadata" JSON DEFAULT NULL, "transaction_id" xid8 NOT NULL,
					PRIMARY KEY ("transaction_id", "offset"))`)
				require.NoError(b, err)
			}
			var streamN atomic.Int64
			b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				stream := fmt.Sprintf("show-%d", streamN.Add(1))
				version := 0
				for pb.Next() {
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						stored, err := eventstore.New(tx).Append(ctx, stream, version,
							[]eventstore.EventData{newEvent(b, "SeatLocked", version)})
						if err != nil || mode == "topic" {
							return err
						}
						pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{
							SchemaAdapter: wsql.DefaultPostgreSQLSchema{},
						}, nil)
						if err != nil {
							return err
						}
						return pub.Publish("events_outbox", eventstore.ToMessage(stored[0]))
					})
					if err != nil {
						b.Error(err)
						return
					}
					version++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}
