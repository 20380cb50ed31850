// The finance dashboard: upload a statement, run a reconciliation and watch its progress,
// browse and resolve items, close the day. Every call goes to the JSON API with the session
// cookie and the page's CSRF token; money-moving resolutions carry an Idempotency-Key.

const boot = JSON.parse(document.getElementById("boot").textContent);
const T = boot.messages;
const CATEGORIES = boot.categories;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const API = "/api/v1";
const POLL_MS = 500; // the progress bar is refreshed twice a second
const $ = (id) => document.getElementById(id);
let currentRun = null;
let resolving = null;

function formatVnd(amount) {
  if (amount === null || amount === undefined) return "";
  const sign = amount < 0 ? "-" : "";
  const digits = String(Math.abs(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return `${sign}${digits}\u00a0₫`;
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `k-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { "X-CSRF-Token": csrf, Accept: "application/json", ...extraHeaders };
  const options = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || T.error);
    error.status = response.status;
    error.problem = data;
    throw error;
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- statements -----------------------------------------------------------------------------
function showStatement(statement) {
  const status = statement.status === "done" ? T.imported : statement.status === "failed" ? T.failed : T.importing;
  $("upload-status").textContent =
    `${T.statement} #${statement.id}: ${status} — ${statement.lines_accepted} ${T.accepted}, ` +
    `${statement.lines_rejected} ${T.rejected}, ${statement.lines_skipped} ${T.skipped}` +
    (statement.message ? ` (${statement.message})` : "");
  $("upload-status").dataset.status = statement.status;
  const list = $("upload-errors");
  list.replaceChildren();
  for (const error of statement.errors || []) {
    const li = document.createElement("li");
    li.textContent = error.line ? `${T.line} ${error.line}: ${error.message}` : error.message;
    list.append(li);
  }
}

async function followStatement(statement) {
  showStatement(statement);
  while (statement.status === "pending") {
    await sleep(POLL_MS);
    statement = await api("GET", `/reconciliation/statements/${statement.id}`);
    showStatement(statement);
  }
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("file", $("statement-file").files[0]);
  form.append("account_number", $("statement-account").value);
  form.append("format", $("statement-format").value);
  $("upload-status").textContent = T.uploading;
  try {
    await followStatement(await api("POST", "/reconciliation/statements", form));
  } catch (error) {
    $("upload-status").textContent = error.message;
  }
});

const sandboxButton = $("sandbox-button");
if (sandboxButton) {
  sandboxButton.addEventListener("click", async () => {
    $("upload-status").textContent = T.importing;
    try {
      const body = { business_date: $("sandbox-date").value, account_number: $("statement-account").value };
      await followStatement(await api("POST", "/reconciliation/sandbox/statements", body));
    } catch (error) {
      $("upload-status").textContent = error.message;
    }
  });
}

// -- runs -----------------------------------------------------------------------------------
function showRun(run) {
  $("run-progress").value = run.progress;
  $("run-percent").textContent = `${run.progress} %`;
  const phase = T[`phase_${run.phase}`] || run.phase;
  $("run-phase").textContent = `#${run.id} ${T[run.status] || run.status} · ${phase}`;
  $("run-phase").dataset.status = run.status;
  for (const row of document.querySelectorAll("#run-counts tbody tr")) {
    row.querySelector(".count").textContent = run.status === "done" ? run.counts[row.dataset.category] : "–";
  }
}

async function followRun(run) {
  currentRun = run;
  showRun(run);
  while (run.status === "queued" || run.status === "running") {
    await sleep(POLL_MS);
    run = await api("GET", `/reconciliation/runs/${run.id}`);
    showRun(run);
  }
  currentRun = run;
  await loadItems();
}

$("run-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = { business_date: $("run-date").value, account_number: $("run-account").value };
    await followRun(await api("POST", "/reconciliation/runs", body));
  } catch (error) {
    $("run-phase").textContent = error.message;
  }
});

for (const link of document.querySelectorAll(".open-run")) {
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    await followRun(await api("GET", `/reconciliation/runs/${link.dataset.runId}`));
  });
}

// -- items ----------------------------------------------------------------------------------
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function itemRow(item) {
  const tr = document.createElement("tr");
  tr.dataset.itemId = item.id;
  tr.dataset.category = item.category;
  const line = item.statement_line;
  const ledger = item.ledger_line;
  tr.append(
    cell(item.id),
    cell(CATEGORIES[item.category] || item.category),
    cell(line ? `${line.bank_txn_id} · ${line.description}` : ""),
    cell(ledger ? `${ledger.external_key} (#${ledger.posting_id})` : ""),
    cell(formatVnd(item.line_amount ?? item.ledger_amount), "num"),
    cell(item.resolution ? `${item.resolution.action}: ${item.resolution.note}` : (item.reason || "")),
  );
  const actions = document.createElement("td");
  if (!item.resolved && item.category !== "matched" && item.category !== "matched_with_fee") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "resolve-button";
    button.textContent = T.resolve;
    button.addEventListener("click", () => openResolve(item));
    actions.append(button);
  } else if (item.resolved) {
    actions.textContent = T.resolved;
  }
  tr.append(actions);
  return tr;
}

async function loadItems() {
  if (!currentRun || currentRun.status !== "done") return;
  const category = $("item-category").value;
  const query = category ? `category=${category}` : "needs_resolution=true";
  const page = await api("GET", `/reconciliation/runs/${currentRun.id}/items?${query}&limit=500`);
  const body = document.querySelector("#items tbody");
  body.replaceChildren(...page.data.map(itemRow));
  $("no-items").hidden = page.data.length > 0;
}

$("item-category").addEventListener("change", loadItems);

function openResolve(item) {
  resolving = item;
  $("resolve-item-id").textContent = `#${item.id}`;
  $("resolve-error").textContent = "";
  $("resolve-note").value = "";
  $("resolve-form").hidden = false;
  $("resolve-note").focus();
}

$("resolve-cancel").addEventListener("click", () => {
  $("resolve-form").hidden = true;
  resolving = null;
});

function numberOrNull(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : Number.parseInt(raw, 10);
}

$("resolve-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!resolving) return;
  const note = $("resolve-note").value.trim();
  if (!note) {
    $("resolve-error").textContent = T.note_required;
    return;
  }
  const action = $("resolve-action").value;
  const body = { action, note };
  if (action === "adjust") {
    body.amount = numberOrNull("resolve-amount");
    body.account = $("resolve-account").value;
  }
  if (action === "link") {
    for (const [field, id] of [["posting_id", "resolve-posting"], ["statement_line_id", "resolve-line"], ["payment_id", "resolve-payment"]]) {
      const value = numberOrNull(id);
      if (value !== null) body[field] = value;
    }
  }
  try {
    await api("POST", `/reconciliation/items/${resolving.id}/resolution`, body, { "Idempotency-Key": newKey() });
    $("resolve-form").hidden = true;
    resolving = null;
    await loadItems();
  } catch (error) {
    $("resolve-error").textContent = error.message;
  }
});

// -- close ----------------------------------------------------------------------------------
function reportLinks(day) {
  $("report-csv").href = `${API}/reports/daily?business_date=${day}&format=csv`;
  $("report-xlsx").href = `${API}/reports/daily?business_date=${day}&format=xlsx`;
}

$("close-date").addEventListener("change", () => reportLinks($("close-date").value));

$("close-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const day = $("close-date").value;
  try {
    const closed = await api("POST", `/reconciliation/days/${day}/close`, undefined, { "Idempotency-Key": newKey() });
    $("close-status").textContent = `${T.closed} ${closed.summary.match_rate}`;
    $("close-status").dataset.status = "closed";
    reportLinks(day);
  } catch (error) {
    $("close-status").textContent = error.message;
    $("close-status").dataset.status = "error";
  }
});
