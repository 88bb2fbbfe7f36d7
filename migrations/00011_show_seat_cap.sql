-- +goose Up
-- A show's cap on the seats one user may hold or have bought at once, from
-- its ShowScheduled event (0: no cap). Shows projected before it were
-- scheduled without a cap, so 0 is what a replay gives them too. A constant
-- default makes this a catalog change: no table rewrite.
ALTER TABLE shows ADD COLUMN max_seats_per_user integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE shows DROP COLUMN max_seats_per_user;
