import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  clearScreen: false,
  // The dev server is for the app's own WebView only: loopback, fixed port.
  server: { host: '127.0.0.1', port: 1420, strictPort: true }
});
