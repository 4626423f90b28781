// A single-page app: the page talks to the hub from the browser, nothing renders on a server.
export const prerender = true;
export const ssr = false;
