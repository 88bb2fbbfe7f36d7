-- +goose Up
-- The projection tables are derived from the events and rebuilt from them;
-- foreign keys between them guard nothing the projector and `bookingctl
-- verify` do not, and cost a lookup per row on every projected hold and on
-- every row a rebuild copies.
ALTER TABLE seats DROP CONSTRAINT seats_show_id_fkey;
ALTER TABLE bookings DROP CONSTRAINT bookings_show_id_fkey;

-- +goose Down
ALTER TABLE seats ADD CONSTRAINT seats_show_id_fkey FOREIGN KEY (show_id) REFERENCES shows (id) ON DELETE CASCADE;
ALTER TABLE bookings ADD CONSTRAINT bookings_show_id_fkey FOREIGN KEY (show_id) REFERENCES shows (id) ON DELETE CASCADE;
