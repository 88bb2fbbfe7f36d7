-- +goose Up
-- The queue of simulated payments: watermill-sql's delayed PostgreSQL queue
-- (PostgreSQLQueueSchema) for the topic "confirm_payment". The payments
-- worker puts one message per hold, due CONFIRM_DELAY after the hold, in the
-- same transaction that moves its checkpoint on the event stream.
CREATE TABLE watermill_confirm_payment (
    "offset"   SERIAL PRIMARY KEY,
    "uuid"     VARCHAR(36) NOT NULL,
    "payload"  JSON DEFAULT NULL,
    "metadata" JSON DEFAULT NULL,
    "acked"    BOOLEAN NOT NULL DEFAULT FALSE,
    "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX watermill_confirm_payment_delayed_until_idx ON watermill_confirm_payment ((metadata->>'_watermill_delayed_until'));

-- +goose Down
DROP TABLE watermill_confirm_payment;
