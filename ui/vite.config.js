import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  clearScreen: false,
  build: {
    rollupOptions: {
      // The generated hub bindings import every SDK name in every file; the unused ones are not a finding.
      onwarn(warning, warn) {
        if (warning.code === 'UNUSED_EXTERNAL_IMPORT' && warning.exporter === '@clockworklabs/spacetimedb-sdk') return;
        warn(warning);
      }
    }
  },
  // The dev server is for the app's own WebView only: loopback, fixed port.
  server: { host: '127.0.0.1', port: 1420, strictPort: true }
});
