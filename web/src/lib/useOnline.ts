import { useEffect, useRef, useState } from 'react';

/** navigator.onLine, kept current by the online and offline events. */
export function useOnline(): boolean {
  const [online, setOnline] = useState(() => (typeof navigator === 'undefined' ? true : navigator.onLine !== false));
  useEffect(() => {
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener('online', up);
    window.addEventListener('offline', down);
    return () => {
      window.removeEventListener('online', up);
      window.removeEventListener('offline', down);
    };
  }, []);
  return online;
}

/** Calls fn each time the browser comes back online (to reload what failed while offline). */
export function useOnReconnect(fn: () => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const up = () => ref.current();
    window.addEventListener('online', up);
    return () => window.removeEventListener('online', up);
  }, []);
}
