// The commuter's ticket page: buy with the wallet, list tickets, show the live TV2 QR.
//
// The phone's P-256 key is a non-extractable WebCrypto key in IndexedDB (tv2.js); it is
// registered once (POST /devices) and every ticket's credential is bound to it. The page signs
// a new QR every 30-second step with that key, on its own, so it keeps working with no signal
// once it holds a credential (kept in localStorage). Time is corrected by the server's clock:
// every API answer carries `server_time`. Phones without WebCrypto get pre-signed fallback
// tokens instead (GET /tickets/{id}/tokens).

import { drawQR } from "./qr.js";
import {
  STEP_SECONDS,
  compressPublicKey,
  currentStep,
  getOrCreateDeviceKey,
  makeQRText,
} from "./tv2.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const T = boot.messages;
const lang = document.getElementById("ticket-app").dataset.lang;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const STORE = {
  tickets: `cashless.tickets.${boot.user}`,
  device: `cashless.device.${boot.user}`,
  selected: `cashless.selected.${boot.user}`,
  offset: "cashless.serverOffsetMs",
};
const REFRESH_EVERY_MS = 6 * 3600 * 1000;
const FALLBACK_TOKENS = 2880;

const el = {
  status: document.getElementById("status"),
  section: document.getElementById("qr-section"),
  title: document.getElementById("qr-title"),
  canvas: document.getElementById("qr"),
  countdown: document.getElementById("countdown"),
  validUntil: document.getElementById("valid-until"),
  offline: document.getElementById("offline-note"),
  list: document.getElementById("tickets"),
  empty: document.getElementById("no-ticket"),
  balance: document.getElementById("balance"),
};

const state = {
  offsetMs: Number(localStorage.getItem(STORE.offset) ?? boot.server_time_ms - Date.now()),
  tickets: JSON.parse(localStorage.getItem(STORE.tickets) || "{}"),
  selected: localStorage.getItem(STORE.selected),
  device: JSON.parse(localStorage.getItem(STORE.device) || "null"),
  keyPair: null,
  fallback: !globalThis.crypto?.subtle,
  shown: { ticket: null, step: null },
  pendingKeys: {},
};

// ---- helpers ------------------------------------------------------------------------------

function say(text, isError = false) {
  el.status.textContent = text || "";
  el.status.classList.toggle("error", Boolean(isError));
}

function formatVnd(amount) {
  return `${String(amount).replace(/\B(?=(\d{3})+(?!\d))/g, ".")}\u00a0₫`;
}

function formatTime(iso) {
  const locale = lang === "vi" ? "vi-VN" : "en-GB";
  const options = { dateStyle: "short", timeStyle: "short", timeZone: "Asia/Ho_Chi_Minh" };
  return new Intl.DateTimeFormat(locale, options).format(new Date(iso));
}

function serverNowMs() {
  return Date.now() + state.offsetMs;
}

function bytesToBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function base64ToBytes(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function save() {
  localStorage.setItem(STORE.tickets, JSON.stringify(state.tickets));
  if (state.selected) localStorage.setItem(STORE.selected, state.selected);
}

async function api(method, path, body, headers = {}) {
  const sentAt = Date.now();
  const response = await fetch(`/api/v1${path}`, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const receivedAt = Date.now();
  const data = await response.json().catch(() => ({}));
  if (data.server_time) {
    // The server stamped its clock somewhere between sending and receiving: take the middle.
    state.offsetMs = Date.parse(data.server_time) - (sentAt + receivedAt) / 2;
    localStorage.setItem(STORE.offset, String(Math.round(state.offsetMs)));
  }
  if (!response.ok) {
    throw Object.assign(new Error(data.detail || response.statusText), {
      status: response.status,
      code: data.code,
    });
  }
  return data;
}

// ---- the phone ----------------------------------------------------------------------------

async function ensureDevice() {
  state.keyPair = await getOrCreateDeviceKey();
  const publicKey = bytesToBase64(await compressPublicKey(state.keyPair.publicKey));
  if (state.device?.public_key === publicKey) return;
  if (!navigator.onLine) return;
  const device = await api("POST", "/devices", { public_key: publicKey });
  state.device = { id: device.id, public_key: publicKey };
  localStorage.setItem(STORE.device, JSON.stringify(state.device));
}

// ---- tickets ------------------------------------------------------------------------------

function remember(ticket) {
  const kept = state.tickets[ticket.id] || {};
  state.tickets[ticket.id] = { ...kept, ...ticket };
  if (!state.selected || !state.tickets[state.selected]) state.selected = String(ticket.id);
  save();
}

function mergeServerList(fresh) {
  // A fresh page is the truth about which tickets are usable; a cached (offline) one is not.
  if (fresh) {
    const usable = new Set(boot.tickets.map((t) => String(t.id)));
    for (const id of Object.keys(state.tickets)) if (!usable.has(id)) delete state.tickets[id];
  }
  for (const ticket of boot.tickets) remember(ticket);
  const now = serverNowMs();
  for (const [id, t] of Object.entries(state.tickets)) {
    if (Date.parse(t.valid_until) < now) delete state.tickets[id];
  }
  save();
}

async function refreshCredential(ticket) {
  if (state.fallback) {
    const data = await api("GET", `/tickets/${ticket.id}/tokens?count=${FALLBACK_TOKENS}`);
    ticket.tokens = data.tokens.map((t) => [t.step, t.qr_text]);
  } else {
    if (!state.device || ticket.device_id !== state.device.id) {
      delete ticket.credential;
      ticket.other_phone = true;
      return;
    }
    const data = await api("POST", `/tickets/${ticket.id}/credential`, {
      device_id: state.device.id,
    });
    ticket.credential = data.credential;
    ticket.credential_not_after = data.credential_not_after;
    ticket.other_phone = false;
  }
  ticket.refreshed_at = Date.now();
}

async function syncCredentials(force = false) {
  for (const ticket of Object.values(state.tickets)) {
    if (!force && ticket.refreshed_at && Date.now() - ticket.refreshed_at < REFRESH_EVERY_MS) {
      continue;
    }
    try {
      await refreshCredential(ticket);
    } catch (error) {
      if (error.status === 409 && error.code === "device_mismatch") ticket.other_phone = true;
      else if (error.status === 409 || error.status === 404) delete state.tickets[ticket.id];
    }
  }
  save();
  renderTickets();
}

async function buy(productId, button) {
  button.disabled = true;
  say(T.buying);
  // One key per intended purchase: a retry after a network error reuses it, so never buys twice.
  state.pendingKeys[productId] ||= newKey();
  try {
    const ticket = await api(
      "POST",
      "/tickets",
      {
        fare_product_id: Number(productId),
        device_id: state.fallback ? null : state.device.id,
        payment_method: "wallet",
      },
      { "Idempotency-Key": state.pendingKeys[productId] },
    );
    delete state.pendingKeys[productId];
    if (state.fallback) await refreshCredential(ticket);
    ticket.refreshed_at = Date.now();
    remember(ticket);
    state.selected = String(ticket.id);
    save();
    say(T.bought);
    renderTickets();
    refreshBalance();
  } catch (error) {
    if (error.status) delete state.pendingKeys[productId];
    say(error.code === "insufficient_funds" ? T.insufficient_funds : error.message || T.error, true);
  } finally {
    button.disabled = false;
  }
}

async function moveHere(ticket, button) {
  button.disabled = true;
  try {
    const data = await api("POST", `/tickets/${ticket.id}/rebind`, {
      device_id: state.device.id,
    });
    remember({ ...data, other_phone: false, refreshed_at: Date.now() });
    state.selected = String(ticket.id);
    save();
    say(T.moved);
    renderTickets();
  } catch (error) {
    say(error.message || T.error, true);
  } finally {
    button.disabled = false;
  }
}

async function refreshBalance() {
  try {
    const wallet = await api("GET", "/wallets/me");
    el.balance.textContent = formatVnd(wallet.balance);
  } catch {
    // The balance is informative only; the next page load shows it again.
  }
}

// ---- rendering ----------------------------------------------------------------------------

function productName(ticket) {
  const product = ticket.fare_product || {};
  return (lang === "vi" ? product.name_vi : product.name_en) || product.code || "";
}

function showable(ticket) {
  return Boolean(ticket && (ticket.credential || ticket.tokens) && !ticket.other_phone);
}

function button(label, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.textContent = label;
  node.addEventListener("click", () => onClick(node));
  return node;
}

function renderTickets() {
  const tickets = Object.values(state.tickets).sort((a, b) => b.id - a.id);
  el.empty.hidden = tickets.length > 0;
  el.list.replaceChildren(
    ...tickets.map((ticket) => {
      const item = document.createElement("li");
      item.dataset.ticketId = ticket.id;
      item.classList.toggle("selected", String(ticket.id) === state.selected);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = productName(ticket);
      const until = document.createElement("span");
      until.textContent = `${T.valid_until}: ${formatTime(ticket.valid_until)}`;
      item.append(name, until);
      if (ticket.other_phone && !state.fallback) {
        item.append(document.createTextNode(T.other_phone));
        if (navigator.onLine) item.append(button(T.move_here, (b) => moveHere(ticket, b)));
      } else if (showable(ticket)) {
        item.append(button(T.show, () => select(ticket.id)));
      }
      return item;
    }),
  );
  state.shown.step = null; // repaint at the next tick
}

function select(ticketId) {
  state.selected = String(ticketId);
  save();
  renderTickets();
  tick();
}

function selectedTicket() {
  const chosen = state.tickets[state.selected];
  if (showable(chosen)) return chosen;
  return Object.values(state.tickets).sort((a, b) => b.id - a.id).find(showable) || null;
}

async function qrTextFor(ticket, step) {
  if (ticket.tokens) {
    const token = ticket.tokens.find(([s]) => s === step);
    return token ? token[1] : null;
  }
  if (serverNowMs() / 1000 > Date.parse(ticket.credential_not_after) / 1000) return null;
  return makeQRText(base64ToBytes(ticket.credential), step, state.keyPair.privateKey);
}

async function paint(ticket, step) {
  const text = await qrTextFor(ticket, step);
  if (state.shown.ticket !== ticket.id || state.shown.step !== step) return; // superseded
  if (!text) {
    el.section.hidden = true;
    say(T.expired, true);
    return;
  }
  el.section.hidden = false;
  el.title.textContent = productName(ticket);
  el.validUntil.textContent = formatTime(ticket.valid_until);
  drawQR(el.canvas, text);
  el.canvas.dataset.qr = text;
  el.canvas.dataset.step = String(step);
  el.canvas.dataset.ticketId = String(ticket.id);
}

function tick() {
  const nowSeconds = Math.floor(serverNowMs() / 1000);
  el.countdown.textContent = String(STEP_SECONDS - (nowSeconds % STEP_SECONDS));
  el.offline.hidden = navigator.onLine;
  const ticket = selectedTicket();
  if (!ticket || (!state.keyPair && !ticket.tokens)) {
    el.section.hidden = true;
    return;
  }
  const step = currentStep(state.offsetMs);
  if (state.shown.ticket === ticket.id && state.shown.step === step) return;
  state.shown = { ticket: ticket.id, step };
  paint(ticket, step).catch(() => say(T.error, true));
}

// ---- start --------------------------------------------------------------------------------

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/ticket-sw.js", { scope: "/ticket" }).catch(() => {});
}

async function start() {
  for (const node of document.querySelectorAll("button.buy")) {
    node.addEventListener("click", () => buy(node.dataset.productId, node));
  }
  window.addEventListener("online", () => syncCredentials(true));
  window.addEventListener("offline", tick);
  mergeServerList(navigator.onLine);
  renderTickets();
  if (state.fallback) say(T.no_webcrypto);
  else await ensureDevice().catch(() => say(T.error, true));
  if (navigator.onLine) await syncCredentials(true);
  tick();
  setInterval(tick, 1000);
  setInterval(() => navigator.onLine && syncCredentials(), 15 * 60 * 1000);
  registerServiceWorker();
  document.body.dataset.ready = "true";
}

start();
