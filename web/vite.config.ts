/// <reference types="vitest/config" />
// Vite builds the app into dist/app, which bookingd embeds (go:embed) and
// serves at / with an index.html fallback for client-side routes. In
// development (`npm run dev`) the API is proxied to a bookingd on :8080.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const api = process.env.BOOKINGD_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist/app',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // Vite's default asset names are hashed: assets/[name]-[hash].js, .css.
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: false },
      '/healthz': api,
      '/readyz': api,
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    restoreMocks: true,
  },
});
