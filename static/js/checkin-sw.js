/* Service worker of the check-in screen (served at /checkin/sw.js, scope /checkin/).
 * Keeps the screen and its files available without a connection; API calls are never cached
 * (the page keeps its own roster and queue in IndexedDB). */
"use strict";

const CACHE = "eventapp-checkin-v1";
const SHELL = ["/static/css/app.css", "/static/css/checkin.css", "/static/js/checkin.js", "/static/vendor/jsQR.js"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (request.mode === "navigate" && url.pathname.startsWith("/checkin/")) {
    // Network first: a fresh page (and CSRF token) when online, the last copy when not.
    event.respondWith(
      fetch(request).then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      }).catch(() => caches.match(request).then((hit) => hit || caches.match(request, { ignoreSearch: true }))),
    );
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    // Cache first, refreshed in the background. Pages ask for /static/…?v=<hash> (eventapp/static_urls.py);
    // offline, a copy under another version (or the unversioned SHELL) beats no stylesheet at all.
    event.respondWith(
      caches.open(CACHE).then((cache) => cache.match(request).then((hit) => {
        const refresh = fetch(request).then((response) => {
          if (response.ok) cache.put(request, response.clone());
          return response;
        }).catch(() => hit || cache.match(request, { ignoreSearch: true }));
        return hit || refresh;
      })),
    );
  }
});
