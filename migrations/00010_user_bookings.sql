-- +goose Up
-- On a ledger of several shards, "my bookings" reads one table in the home
-- database instead of asking every shard: user_bookings copies each
-- booking's row from the shard that holds it, kept by one index consumer
-- per shard (projections.UserIndex), whose place in that shard's stream
-- commits with the rows in user_index_positions. Unused on one database.
CREATE TABLE user_bookings (
    id           uuid        PRIMARY KEY,
    show_id      bigint      NOT NULL,
    user_id      uuid        NOT NULL,
    seat_numbers text[]      NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'expired', 'cancelled')),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    expired_at   timestamptz,
    cancelled_at timestamptz,
    version      integer     NOT NULL -- the show's stream version of the last event applied
);
CREATE INDEX user_bookings_user_idx ON user_bookings (user_id, created_at DESC, id DESC);

CREATE TABLE user_index_positions (
    shard           integer PRIMARY KEY,
    transaction_id  bigint  NOT NULL,
    global_position bigint  NOT NULL,
    -- set once the index has read the shard's whole stream: until every
    -- shard's is, "my bookings" asks the shards themselves
    caught_up       boolean NOT NULL DEFAULT false
);

-- +goose Down
DROP TABLE user_index_positions;
DROP TABLE user_bookings;
