/* The attendant's page: record entries by plate, watch occupancy, price an exit with its
 * breakdown and take the fee by VietQR (live status), cash or the driver's wallet. */
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var T = boot.messages;
  if (!boot.lots.length) return;
  var C = window.Cashless;
  var DEVICE_KEY = "cashless.parking.device";
  var device = localStorage.getItem(DEVICE_KEY) || "web-" + C.newKey().slice(0, 12);
  localStorage.setItem(DEVICE_KEY, device);
  var lotId = Number(document.getElementById("lot").value);
  var exiting = null;
  var payment = null;
  var source = null;

  function $(id) { return document.getElementById(id); }
  function hhmm(iso) { return String(iso).substring(11, 16); }

  function line(item) {
    if (item.kind === "grace") return T.free;
    if (item.kind === "monthly_pass") return T.pass;
    if (item.kind === "hours") {
      return T.hours + " " + item.period + ": " + item.hours + " " + T.hours_unit +
        (item.capped ? " (" + T.capped + ")" : "") + ": " + C.vnd(item.amount);
    }
    var name = T[item.kind] || item.kind;
    return name + " " + hhmm(item.start) + "–" + hhmm(item.end) + ": " + C.vnd(item.amount);
  }

  function showPrice(amount, breakdown) {
    $("exit-amount").textContent = C.vnd(amount);
    var list = $("exit-breakdown");
    list.replaceChildren.apply(list, breakdown.map(function (item) {
      var li = document.createElement("li");
      li.textContent = line(item);
      li.dataset.kind = item.kind;
      return li;
    }));
  }

  async function refresh() {
    try {
      var lot = await C.api("GET", "/parking/lots/" + lotId);
      Object.keys(T.classes).forEach(function (key) {
        $("capacity-" + key).textContent = String(lot.capacity[key] || 0);
        $("occupied-" + key).textContent = String(lot.occupied[key] || 0);
        $("free-" + key).textContent = String(lot.free[key] || 0);
      });
      var page = await C.api("GET", "/parking/lots/" + lotId + "/sessions?status=inside&limit=500");
      renderInside(page.data);
    } catch (e) { /* the next refresh tries again */ }
  }

  function renderInside(sessions) {
    var body = $("inside").querySelector("tbody");
    body.replaceChildren.apply(body, sessions.map(function (s) {
      var tr = document.createElement("tr");
      tr.dataset.sessionId = String(s.id);
      tr.dataset.plate = s.plate;
      [s.plate, T.classes[s.vehicle_class] || s.vehicle_class, C.localTime(s.entered_at)].forEach(
        function (text) {
          var td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        });
      var td = document.createElement("td");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "exit-button";
      button.textContent = T.exit;
      button.addEventListener("click", function () { openExit(s); });
      td.appendChild(button);
      tr.appendChild(td);
      return tr;
    }));
    $("no-vehicles").hidden = sessions.length > 0;
  }

  $("lot").addEventListener("change", function () {
    lotId = Number(this.value);
    refresh();
  });

  $("entry-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var status = $("entry-status");
    status.className = "";
    try {
      var session = await C.api("POST", "/parking/lots/" + lotId + "/sessions", {
        plate: $("plate").value, vehicle_class: $("vehicle-class").value, device_id: device,
      }, true);
      status.textContent = T.entered + ": " + session.plate;
      $("plate").value = "";
      refresh();
    } catch (e) {
      status.className = "error";
      status.textContent = e.code === "plate_already_inside" ? T.already_inside
        : e.code === "lot_full" ? T.lot_full
        : e.code === "invalid_plate" ? T.bad_plate : (e.message || T.error);
    }
  });

  function resetExit() {
    if (source) { source.close(); source = null; }
    payment = null;
    var panel = $("exit-panel");
    panel.classList.remove("paid");
    delete panel.dataset.status;
    delete panel.dataset.payload;
    delete panel.dataset.paymentId;
    $("exit-qr").hidden = true;
    $("exit-scan").hidden = true;
    $("exit-cancel").hidden = true;
    $("exit-methods").hidden = false;
    $("exit-status").textContent = "";
  }

  async function openExit(session) {
    resetExit();
    exiting = session;
    $("exit-panel").hidden = false;
    $("exit-plate").textContent = session.plate;
    if (session.status === "awaiting_payment") return pay("vietqr");
    try {
      var quote = await C.api("POST", "/parking/lots/" + lotId + "/quotes", {
        vehicle_class: session.vehicle_class, entered_at: session.entered_at,
        exited_at: new Date().toISOString(),
      });
      showPrice(quote.amount, quote.breakdown);
    } catch (e) {
      $("exit-status").textContent = e.message || T.error;
    }
  }

  function closed(result) {
    var method = result.session.method;
    $("exit-methods").hidden = true;
    $("exit-cancel").hidden = true;
    $("exit-qr").hidden = true;
    $("exit-scan").hidden = true;
    $("exit-panel").classList.add("paid");
    $("exit-status").textContent = method === "cash" ? T.cash_taken
      : method === "free" ? T.free : method === "pass" ? T.pass : T.paid;
    $("exit-panel").dataset.status = "closed";
    refresh();
  }

  function follow(pending) {
    payment = pending;
    $("exit-methods").hidden = true;
    $("exit-qr").src = pending.qr.png_url;
    $("exit-panel").dataset.paymentId = String(pending.id);
    $("exit-panel").dataset.payload = pending.qr.payload;
    $("exit-qr").hidden = false;
    $("exit-scan").hidden = false;
    $("exit-cancel").hidden = false;
    $("exit-status").textContent = T.pending;
    $("exit-panel").dataset.status = "awaiting_payment";
    if (source) source.close();
    source = new EventSource(pending.events_url);
    source.addEventListener("status", function (event) {
      var state = JSON.parse(event.data);
      if (state.status === "succeeded") {
        source.close();
        source = null;
        closed({ session: { method: "vietqr" } });
      } else if (state.status === "expired" || state.status === "cancelled") {
        source.close();
        source = null;
        $("exit-status").textContent = T[state.status];
        $("exit-qr").hidden = true;
        $("exit-cancel").hidden = true;
        $("exit-methods").hidden = false;
      }
    });
  }

  async function pay(method) {
    if (!exiting) return;
    var body = { method: method, device_id: device };
    if (method === "wallet" && $("payer").value) body.payer = $("payer").value;
    try {
      var result = await C.api("POST", "/parking/sessions/" + exiting.id + "/exit", body, true);
      showPrice(result.amount, result.breakdown);
      if (result.session.status === "closed") closed(result);
      else if (result.payment) follow(result.payment);
    } catch (e) {
      $("exit-status").textContent = e.message || T.error;
    }
  }

  $("pay-vietqr").addEventListener("click", function () { pay("vietqr"); });
  $("pay-cash").addEventListener("click", function () { pay("cash"); });
  $("pay-wallet").addEventListener("click", function () { pay("wallet"); });
  $("exit-close").addEventListener("click", function () {
    resetExit();
    $("exit-panel").hidden = true;
    exiting = null;
  });
  $("exit-cancel").addEventListener("click", async function () {
    if (!payment) return;
    try {
      await C.api("POST", "/payments/" + payment.id + "/cancel", undefined, true);
      if (source) { source.close(); source = null; }
      $("exit-status").textContent = T.cancelled;
      $("exit-qr").hidden = true;
      $("exit-cancel").hidden = true;
      $("exit-methods").hidden = false;
    } catch (e) {
      $("exit-status").textContent = e.message || T.error;
    }
  });

  $("lookup-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var plate = $("lookup-plate").value.replace(/[^A-Za-z0-9]/g, "");
    try {
      var answer = await C.api("GET", "/parking/enforcement/" + encodeURIComponent(plate));
      $("lookup-result").textContent = answer.plate + ": " + (answer.paid ? T.lookup_paid : T.lookup_unpaid) +
        (answer.valid_until ? " (" + T.valid_until + " " + new Date(answer.valid_until).toLocaleDateString("vi-VN") + ")" : "");
    } catch (e) {
      $("lookup-result").textContent = e.message || T.error;
    }
  });

  refresh();
  window.setInterval(refresh, 10000);
})();
