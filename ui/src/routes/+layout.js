// Static app: no server-side rendering, every route prerendered.
export const prerender = true;
export const ssr = false;
