import type { LiveState } from '../lib/live';

const TEXT: Record<LiveState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  unsupported: 'Not live',
};

/** Whether the seat map follows changes as they happen. */
export function LiveBadge({ state, online = true }: { state: LiveState; online?: boolean }) {
  const shown: LiveState = !online && state === 'live' ? 'reconnecting' : state;
  return (
    <span className={`live-badge live-badge--${shown}`} role="status" data-testid="live-state" data-state={shown}>
      <span className="live-dot" aria-hidden="true" />
      {TEXT[shown]}
    </span>
  );
}
