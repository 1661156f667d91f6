// The service worker of the offline mode: after one visit with a connection, the page, its scripts, the in-browser
// runtime (LiteRT.js and its WebAssembly) and the production model stay in this browser, so the page opens and
// diagnoses with the network gone.
// - the page, its scripts and the model's description (/models/web): from the network when there is one (always
//   the current page and production model), else from the cache;
// - the model's files (under their content hash): from the cache once fetched (they never change under their name);
//   when a new production model is described, the files of the old one are dropped;
// - the runtime's files (/vendor/: LiteRT.js and its WebAssembly): from the cache at once, refreshed in the background
//   (an upgraded runtime is used from the next visit on).
// Everything else (predictions, feedback) goes to the network as usual.
// The outbox (outbox.js): what the page could not send (answers computed on the device, verdicts) is sent from here
// by Background Sync when the connection returns, even with the page closed (where the browser has it; else the page
// sends it on the next visit). This worker is a module (registered with type "module").
import { SYNC_TAG, flush, getToken } from "/static/outbox.js";

const SHELL = "plant-disease-shell-v1";
const FILES = "plant-disease-files-v1";
const PAGE = ["/", "/static/app.js", "/static/style.css", "/static/ondevice.js", "/static/pixels.js",
  "/static/outbox.js", "/manifest.webmanifest", "/static/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(PAGE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (![SHELL, FILES].includes(name)) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

const isDescription = (path) => /^\/models\/(web|[^/]+\/web)$/.test(path);
const isForever = (path) => /^\/models\/[^/]+\/web\/[0-9a-f]+\/[^/]+$/.test(path);
const isRuntime = (path) => path.startsWith("/vendor/");
const isPage = (path) => PAGE.includes(path);

async function networkFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  try {
    const resp = await fetch(request);
    if (resp.ok) await cache.put(request, resp.clone());
    return resp;
  } catch (e) {
    const hit = await cache.match(request, { ignoreVary: true });
    if (hit) return hit;
    throw e;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(FILES);
  const hit = await cache.match(request, { ignoreVary: true });
  if (hit) return hit;
  const resp = await fetch(request);
  if (resp.ok) await cache.put(request, resp.clone());
  return resp;
}

async function staleWhileRevalidate(event, request) {
  const cache = await caches.open(FILES);
  const hit = await cache.match(request, { ignoreVary: true });
  const fresh = fetch(request).then(async (resp) => {
    if (resp.ok) await cache.put(request, resp.clone());
    return resp;
  });
  if (!hit) return fresh;
  event.waitUntil(fresh.catch(() => undefined));  // offline: the cached copy stays
  return hit;
}

// A new description names the current hash: drop the files of the variant's other models.
async function dropOldModels(resp) {
  try {
    const meta = await resp.clone().json();
    const cache = await caches.open(FILES);
    const prefix = `/models/${meta.variant}/web/`;
    for (const req of await cache.keys()) {
      const path = new URL(req.url).pathname;
      if (path.startsWith(prefix) && !path.startsWith(`${prefix}${meta.hash}/`)) await cache.delete(req);
    }
  } catch (e) { /* not a description: nothing to drop */ }
}

async function describedHash(resp) {
  try { return (await resp.clone().json()).hash; } catch (e) { return null; }
}

// The page asks to keep what its engine fetched (`paths`, the description naming model `hash`), for the requests this
// worker did not see: a page it did not control yet (a first visit where it took control late, a hard reload). Each
// one not kept yet is fetched and kept under the rules above, so that "Ready offline" is true whatever the timing; a
// kept description of another model is taken fresh where the network answers (and the old model's files dropped);
// offline, its kept copy does. Answers the paths it could not keep.
async function keep(paths, headers, hash) {
  const missing = [];
  for (const path of paths) {
    const name = isDescription(path) || isPage(path) ? SHELL : isForever(path) || isRuntime(path) ? FILES : null;
    if (!name) continue;
    const cache = await caches.open(name);
    const request = new Request(path, { headers });
    const kept = await cache.match(request, { ignoreVary: true });
    if (kept && (!isDescription(path) || (await describedHash(kept)) === hash)) continue;
    try {
      const resp = await fetch(request);
      if (!resp.ok) throw new Error(`answered ${resp.status}`);
      await cache.put(request, resp.clone());
      if (isDescription(path)) await dropOldModels(resp);
    } catch (e) {
      if (!kept) missing.push(`${path} (${e.message || e})`);
    }
  }
  return missing;
}

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  if (msg.type !== "keep" || !event.ports[0]) return;
  event.waitUntil(keep(msg.paths || [], msg.headers || {}, msg.hash).then(
    (missing) => event.ports[0].postMessage({ missing }),
    (e) => event.ports[0].postMessage({ missing: [`${e.message || e}`] }),
  ));
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (request.mode === "navigate" && path === "/") {
    event.respondWith(networkFirst(new Request("/"), SHELL));
  } else if (isDescription(path)) {
    event.respondWith(networkFirst(request, SHELL).then(async (resp) => {
      if (resp.ok) await dropOldModels(resp);
      return resp;
    }));
  } else if (isForever(path)) {
    event.respondWith(cacheFirst(request));
  } else if (isRuntime(path)) {
    event.respondWith(staleWhileRevalidate(event, request));
  } else if (isPage(path)) {
    event.respondWith(networkFirst(request, SHELL));
  }
});

// Background Sync: send the outbox; a failure the browser can cure by waiting (offline, a busy or failing service)
// is thrown, so that it tries again later; one it cannot (a refused token) waits for the page.
async function syncOutbox() {
  const result = await flush({ token: await getToken() });
  for (const client of await self.clients.matchAll({ type: "window" })) {
    client.postMessage({ type: "outbox", sent: result.sent, problem: result.problem });
  }
  if (result.problem && result.problem.kind !== "token") throw new Error(result.problem.message);
}

self.addEventListener("sync", (event) => {
  if (event.tag === SYNC_TAG) event.waitUntil(syncOutbox());
});
