-- +goose Up
-- Read models, maintained by the projector from the event stream. They lag the
-- stream and are never used to decide a command. version is the show stream's
-- version last applied to the show's rows, so applying an event twice is a no-op.
CREATE TABLE shows (
    id              bigint      PRIMARY KEY,
    name            text        NOT NULL,
    show_type       text        NOT NULL CHECK (show_type IN ('movie', 'bus', 'doctor')),
    start_time      timestamptz NOT NULL,
    total_seats     integer     NOT NULL,
    available_seats integer     NOT NULL,
    version         integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX shows_start_time_idx ON shows (start_time, id);
CREATE INDEX shows_type_start_time_idx ON shows (show_type, start_time, id);

CREATE TABLE seats (
    show_id      bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    seat_number  text        NOT NULL,
    position     integer     NOT NULL,
    status       text        NOT NULL CHECK (status IN ('available', 'locked', 'booked')),
    booking_id   uuid,
    locked_until timestamptz,
    PRIMARY KEY (show_id, seat_number)
);
CREATE INDEX seats_show_position_idx ON seats (show_id, position);

CREATE TABLE bookings (
    id           uuid        PRIMARY KEY,
    show_id      bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL,
    seat_numbers text[]      NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'expired', 'cancelled')),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    expired_at   timestamptz,
    cancelled_at timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX bookings_user_idx ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX bookings_pending_expiry_idx ON bookings (expires_at) WHERE status = 'pending';
CREATE INDEX bookings_show_idx ON bookings (show_id);

-- +goose Down
DROP TABLE bookings;
DROP TABLE seats;
DROP TABLE shows;
