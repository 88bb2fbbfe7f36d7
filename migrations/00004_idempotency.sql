-- +goose Up
-- Idempotency-Key records (IETF httpapi idempotency draft): the first answer
-- to a (user, key) is stored and replayed for retries within the TTL. A row
-- whose status_code is NULL belongs to a request still running.
CREATE TABLE idempotency_keys (
    user_id       uuid        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status_code   integer,
    headers       jsonb,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
