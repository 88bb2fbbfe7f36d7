-- +goose Up
-- Every change to a show's projected rows notifies 'projection_changed' with
-- the show id. Notifications are delivered only when the projector's
-- transaction commits, and duplicates within it are merged, so listeners
-- (the Redis cache invalidator) act on committed changes only.
-- +goose StatementBegin
CREATE FUNCTION notify_projection_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('projection_changed', NEW.id::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER shows_changed AFTER INSERT OR UPDATE ON shows
    FOR EACH ROW EXECUTE FUNCTION notify_projection_changed();

-- +goose Down
DROP TRIGGER shows_changed ON shows;
DROP FUNCTION notify_projection_changed();
