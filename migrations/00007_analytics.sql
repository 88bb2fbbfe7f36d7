-- +goose Up
-- Per-show figures of the analytics job (cmd/analytics), a consumer group of
-- the event stream. Its rows and its checkpoint commit together.
CREATE TABLE analytics_shows (
    show_id      bigint  PRIMARY KEY,
    name         text    NOT NULL,
    show_type    text    NOT NULL,
    total_seats  integer NOT NULL,
    holds        integer NOT NULL DEFAULT 0,
    confirmed    integer NOT NULL DEFAULT 0,
    expired      integer NOT NULL DEFAULT 0,
    cancelled    integer NOT NULL DEFAULT 0,
    seats_booked integer NOT NULL DEFAULT 0
);
CREATE TABLE analytics_holds (
    booking_id   uuid        PRIMARY KEY,
    show_id      bigint      NOT NULL,
    seats        integer     NOT NULL,
    held_at      timestamptz NOT NULL,
    confirmed_at timestamptz,
    status       text        NOT NULL
);
CREATE INDEX analytics_holds_show_idx ON analytics_holds (show_id);

-- +goose Down
DROP TABLE analytics_holds;
DROP TABLE analytics_shows;
