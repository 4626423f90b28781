import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

// One package, two fronts sharing src/lib: the desktop window (the default:
// prerendered into ui/build, embedded by Tauri) and, with HEIWA_FRONT=face,
// the web dashboard (a single-page app in ui/build-face, served by
// `heiwa dashboard` or any static host).
const face = process.env.HEIWA_FRONT === 'face';

/** @type {import('@sveltejs/kit').Config} */
export default {
  preprocess: vitePreprocess(),
  kit: face
    ? {
        adapter: adapter({ pages: 'build-face', assets: 'build-face' }),
        files: { routes: 'src/face/routes', appTemplate: 'src/face/app.html' },
        // The page holds its hub token: only its own scripts run (hashed by
        // SvelteKit), and it connects to nothing but this origin and a hub.
        csp: {
          mode: 'hash',
          directives: {
            'default-src': ['self'],
            'script-src': ['self'],
            'style-src': ['self', 'unsafe-inline'],
            'connect-src': ['self', 'ws:', 'wss:', 'http:', 'https:'],
            'img-src': ['self', 'data:'],
            'object-src': ['none'],
            'base-uri': ['none'],
            'frame-ancestors': ['none']
          }
        }
      }
    : { adapter: adapter() }
};
