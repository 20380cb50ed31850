/* Helpers shared by the vendor and attendant pages: JSON calls with the session cookie and
 * the CSRF header, Idempotency-Keys, and amounts printed the Vietnamese way (15.000 ₫). */
(function (root) {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function newKey() {
    if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    root.crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function vnd(amount) {
    var sign = amount < 0 ? "-" : "";
    var digits = String(Math.abs(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
    return sign + digits + "\u00a0₫";
  }

  async function api(method, path, body, idempotent) {
    var headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotent) headers["Idempotency-Key"] = newKey();
    var response = await fetch("/api/v1" + path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      var error = new Error((data && data.detail) || response.statusText);
      error.status = response.status;
      error.code = data && data.code;
      throw error;
    }
    return data;
  }

  function parseAmount(text) {
    var digits = String(text || "").replace(/[.\s,₫]/g, "");
    if (!/^[0-9]{1,12}$/.test(digits)) return null;
    var amount = Number(digits);
    return amount > 0 ? amount : null;
  }

  function localTime(iso) {
    // Business time is Asia/Ho_Chi_Minh whatever the device's zone; older days show the date.
    var zone = { timeZone: "Asia/Ho_Chi_Minh" };
    var at = new Date(iso);
    var time = at.toLocaleTimeString("vi-VN", Object.assign({ hour: "2-digit", minute: "2-digit" }, zone));
    var day = at.toLocaleDateString("vi-VN", zone);
    return day === new Date().toLocaleDateString("vi-VN", zone) ? time : time + " " + day;
  }

  root.Cashless = { api: api, vnd: vnd, newKey: newKey, parseAmount: parseAmount, localTime: localTime };
})(window);
