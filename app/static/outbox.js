// The outbox: what the page made while the service could not be reached waits here, in this browser's IndexedDB,
// until it is sent: the answers computed on this device (with their photos) and the verdicts on answers. Each item
// carries an idempotency key made here (a UUID), which the service honours: sent twice (a connection that dropped
// before the reply, the page and the service worker's Background Sync at once), it is recorded once.
// Used by the page (app.js) and by the service worker (sw.js: the `sync` event), one flush at a time (Web Locks).
// Nothing is dropped by a failure: an item leaves the outbox when the service has recorded it, or when the user
// discards the waiting items.
const DB_NAME = "plant-disease-outbox";
const ITEMS = "items";
const META = "meta";
export const SYNC_TAG = "plant-disease-outbox";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let opening = null;
function db() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const d = req.result;
        d.createObjectStore(ITEMS, { keyPath: "id" }).createIndex("seq", "seq");
        d.createObjectStore(META);
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("the outbox is open in an older version of this page: close its other tabs"));
    }).catch((e) => { opening = null; throw e; });
  }
  return opening;
}

async function tx(store, mode, fn) {
  const d = await db();
  const t = d.transaction(store, mode);
  const done = new Promise((resolve, reject) => {
    t.oncomplete = () => resolve();
    t.onabort = () => reject(t.error || new Error("the outbox transaction was aborted"));
    t.onerror = () => reject(t.error);
  });
  const result = await fn(t.objectStore(store));
  await done;
  return result;
}

export class StorageFullError extends Error {}

// Keep `item` ({id, kind: "answer" | "verdict", ...}); a full device store says so in words.
export async function add(item) {
  const row = { ...item, seq: Date.now() + Math.random() / 1000, tries: 0, held: null };
  try {
    await tx(ITEMS, "readwrite", (s) => request(s.put(row)));
  } catch (e) {
    if (e && e.name === "QuotaExceededError") {
      throw new StorageFullError("this device's storage is full, so the item cannot be kept for sending: free some space (photos, other sites' data), then try again");
    }
    throw e;
  }
  return row;
}

export async function list() {
  return tx(ITEMS, "readonly", (s) => request(s.index("seq").getAll()));
}

export async function remove(id) {
  return tx(ITEMS, "readwrite", (s) => request(s.delete(id)));
}

async function update(item) {
  return tx(ITEMS, "readwrite", (s) => request(s.put(item)));
}

// Discard every waiting item (the user's choice; see the page's privacy note).
export async function clear() {
  return tx(ITEMS, "readwrite", (s) => request(s.clear()));
}

// The access token the service worker sends with (the page keeps it in localStorage, which a worker cannot read).
export async function setToken(token) {
  return tx(META, "readwrite", (s) => request(token ? s.put(token, "token") : s.delete("token")));
}

export async function getToken() {
  return tx(META, "readonly", (s) => request(s.get("token")));
}

async function detail(resp) {
  try {
    const d = (await resp.json()).detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg ? `${(e.loc || []).slice(1).join(".")}: ${e.msg}` : String(e))).join("; ");
  } catch (e) { /* not JSON */ }
  return `HTTP ${resp.status}`;
}

function send(item, token, fetchImpl) {
  const headers = { Accept: "application/json", "Idempotency-Key": item.id };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (item.kind === "answer") {
    const form = new FormData();
    form.append("file", item.photo, item.answer.filename || "photo.jpg");
    form.append("answer", JSON.stringify(item.answer));
    return fetchImpl("/predictions/device", { method: "POST", headers, body: form });
  }
  headers["Content-Type"] = "application/json";
  const body = { request_id: item.request_id, verdict: item.verdict, label: item.label || null, note: item.note || null };
  if (item.image_sha256) body.image_sha256 = item.image_sha256;
  return fetchImpl("/feedback", { method: "POST", headers, body: JSON.stringify(body) });
}

// Send what waits, oldest first (an answer before the verdicts on it). Returns {sent, items (those still waiting),
// problem}: problem is null, or {kind, message} with kind offline | token | busy | server, which stops the flush
// (everything stays); an item the service refuses for itself (a model version it no longer has, a token without the
// scope) is held with the service's words, and the flush goes on. Held items are tried again at every flush.
export async function flush({ token = null, fetchImpl = (...a) => fetch(...a) } = {}) {
  const run = async () => {
    let sent = 0;
    let problem = null;
    const heldAnswers = new Set();
    for (const item of await list()) {
      if (item.kind === "verdict" && heldAnswers.has(item.request_id)) continue;  // its answer must go first
      let resp;
      try {
        resp = await send(item, token, fetchImpl);
      } catch (e) {
        problem = { kind: "offline", message: "the service cannot be reached: they will be sent when the connection returns" };
        break;
      }
      if (resp.ok) {
        await remove(item.id);
        sent += 1;
        continue;
      }
      const words = await detail(resp);
      if (resp.status === 401) {
        problem = { kind: "token", message: `the access token was refused (${words}): enter a valid token to send them` };
        break;
      }
      if (resp.status === 429 || resp.status === 503 || resp.status >= 500) {
        const wait = resp.headers.get("Retry-After");
        problem = {
          kind: resp.status === 429 ? "busy" : "server",
          message: `the service could not take them now (HTTP ${resp.status}: ${words})${wait ? `; trying again in ${wait} s` : "; they will be sent later"}`,
          retryAfter: wait ? Number(wait) : null,
        };
        break;
      }
      // refused for itself (409: a model version the service no longer has; 403: a token without the scope; 4xx):
      // kept, with the service's words, and tried again next time
      item.tries += 1;
      item.held = { status: resp.status, reason: words };
      await update(item);
      if (item.kind === "answer") heldAnswers.add(item.id);
    }
    return { sent, items: await list(), problem };
  };
  if (globalThis.navigator && navigator.locks) return navigator.locks.request(DB_NAME, run);
  return run();
}
