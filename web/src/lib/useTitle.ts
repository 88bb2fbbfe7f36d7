import { useEffect } from 'react';

/** Sets the document title ("Dune · Booking ledger") while the page is shown. */
export function useTitle(title: string | null | undefined): void {
  useEffect(() => {
    document.title = title ? `${title} · Booking ledger` : 'Booking ledger';
  }, [title]);
}
