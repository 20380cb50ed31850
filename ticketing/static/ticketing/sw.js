// Offline cache of the ticket page. Network first (the page and scripts are always fresh when
// there is signal), the cache when there is none, so the page opens on a phone with no signal
// and shows the QR from the credential kept in localStorage. Only the ticket page and its own
// static files are touched; every API call goes to the network as usual.

const CACHE = "cashless-ticket-v1";
const PAGE = "/ticket";
const ASSETS = [
  PAGE,
  "/static/ticketing/ticket_page.js",
  "/static/ticketing/tv2.js",
  "/static/ticketing/qr.js",
  "/static/ticketing/base45.js",
  "/static/ticketing/ticket.css",
  "/static/site/site.css",
];

self.addEventListener("install", (event) => {
  self.skipWaiting();
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(ASSETS)).catch(() => {}));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function cacheKey(url) {
  return url.pathname === PAGE ? PAGE : url.pathname;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const ours = url.pathname === PAGE || url.pathname.startsWith("/static/ticketing/")
    || url.pathname.startsWith("/static/site/");
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !ours) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok && !response.redirected) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(cacheKey(url), copy));
        }
        return response;
      })
      .catch(() => caches.match(cacheKey(url)).then((hit) => hit || Response.error())),
  );
});
