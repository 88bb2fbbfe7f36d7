-- +goose Up
-- The projector updates seats and shows rows in place, many times each; with
-- room left on every page PostgreSQL keeps those updates HOT (no new index
-- entries). Tables written before this migration get the room as their pages
-- are rewritten (VACUUM FULL or a `bookingctl replay`).
ALTER TABLE seats SET (fillfactor = 70);
ALTER TABLE shows SET (fillfactor = 50);
-- No query reads a show's bookings; the index only cost every projected hold.
DROP INDEX bookings_show_idx;

-- +goose Down
CREATE INDEX bookings_show_idx ON bookings (show_id);
ALTER TABLE seats RESET (fillfactor);
ALTER TABLE shows RESET (fillfactor);
