/* The vendor's checkout: type an amount, show the dynamic VietQR, follow its live status
 * (Server-Sent Events), turn green and say "Đã nhận … đồng" when it is paid. */
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var T = boot.messages;
  if (!boot.merchant) return;
  var C = window.Cashless;
  var merchantId = boot.merchant.id;
  var stalls = {};
  boot.merchant.stalls.forEach(function (s) { stalls[s.id] = s; });
  var FINAL = ["succeeded", "expired", "cancelled", "failed", "refunded", "partially_refunded"];
  var current = null;
  var source = null;
  var soundOn = false;

  function $(id) { return document.getElementById(id); }

  function speak(text) {
    if (!soundOn || !("speechSynthesis" in window)) return;
    var utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = "vi-VN";
    var voice = window.speechSynthesis.getVoices().find(function (v) {
      return (v.lang || "").toLowerCase().indexOf("vi") === 0;
    });
    if (voice) utterance.voice = voice;
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(utterance);
  }

  $("sound-toggle").addEventListener("click", function () {
    soundOn = !soundOn;
    this.setAttribute("aria-pressed", String(soundOn));
    this.textContent = soundOn ? T.sound_on : T.sound_off;
    // Browsers allow speech only after a user gesture: this click is it.
    if (soundOn && "speechSynthesis" in window) window.speechSynthesis.getVoices();
  });

  function setStatus(status) {
    $("charge-status").textContent = T[status] || status;
    $("charge").dataset.status = status;
  }

  function finish(status, amount) {
    if (source) { source.close(); source = null; }
    $("cancel-charge").hidden = true;
    $("new-charge").hidden = false;
    if (status === "succeeded") {
      $("charge").classList.add("paid");
      var text = VnSpeech.announcement(amount);
      $("spoken-text").textContent = text;
      speak(text);
      loadSales();
    }
  }

  function update(state) {
    if (!current || state.payment_id !== current.id) return;
    setStatus(state.status);
    if (FINAL.indexOf(state.status) >= 0) finish(state.status, state.amount);
  }

  function follow(charge) {
    if (source) source.close();
    source = new EventSource(charge.events_url);
    source.addEventListener("status", function (event) { update(JSON.parse(event.data)); });
    source.addEventListener("amount_mismatch", function () {
      $("charge-warning").textContent = T.amount_mismatch;
      $("charge-warning").hidden = false;
    });
  }

  function show(charge) {
    current = charge;
    var panel = $("charge");
    panel.hidden = false;
    panel.classList.remove("paid");
    $("charge-qr").src = charge.qr.png_url;
    panel.dataset.paymentId = String(charge.id);
    panel.dataset.payload = charge.qr.payload;
    $("charge-amount").textContent = C.vnd(charge.amount);
    $("charge-reference").textContent = charge.reference;
    $("spoken-text").textContent = "";
    $("charge-warning").hidden = true;
    $("cancel-charge").hidden = false;
    $("new-charge").hidden = true;
    setStatus(charge.status);
    follow(charge);
  }

  $("charge-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var amount = C.parseAmount($("amount").value);
    var error = $("form-error");
    error.hidden = true;
    if (amount === null) {
      error.textContent = T.bad_amount;
      error.hidden = false;
      return;
    }
    var body = { amount: amount };
    if ($("stall")) body.stall_id = Number($("stall").value);
    $("create-charge").disabled = true;
    try {
      show(await C.api("POST", "/merchants/" + merchantId + "/charges", body, true));
    } catch (e) {
      error.textContent = e.message || T.error;
      error.hidden = false;
    } finally {
      $("create-charge").disabled = false;
    }
  });

  $("cancel-charge").addEventListener("click", async function () {
    if (!current) return;
    try {
      var payment = await C.api("POST", "/payments/" + current.id + "/cancel", undefined, true);
      update({ payment_id: payment.id, status: payment.status, amount: payment.amount });
    } catch (e) {
      $("charge-warning").textContent = e.message || T.error;
      $("charge-warning").hidden = false;
    }
  });

  $("new-charge").addEventListener("click", function () {
    $("charge").hidden = true;
    current = null;
    $("amount").value = "";
    $("amount").focus();
  });

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      td.textContent = cell[0];
      if (cell[1]) td.className = cell[1];
      tr.appendChild(td);
    });
    return tr;
  }

  function renderSales(summary) {
    $("sales-total").textContent = C.vnd(summary.amount);
    $("sales-count").textContent = String(summary.count);
    var perStall = $("stall-sales").querySelector("tbody");
    perStall.replaceChildren.apply(perStall, summary.stalls.map(function (s) {
      return row([[s.name || "—"], [String(s.count), "num"], [C.vnd(s.amount), "num"],
                  [C.vnd(s.static_amount), "num"]]);
    }));
    var list = $("sales").querySelector("tbody");
    list.replaceChildren.apply(list, summary.sales.map(function (p) {
      var stall = stalls[p.stall_id];
      var tr = row([[p.succeeded_at ? C.localTime(p.succeeded_at) : ""], [stall ? stall.name : "—"],
                    [T[p.kind] || p.kind], [C.vnd(p.amount), "num"]]);
      tr.dataset.paymentId = String(p.id);
      tr.dataset.kind = p.kind;
      return tr;
    }));
    $("no-sales").hidden = summary.sales.length > 0;
  }

  async function loadSales() {
    try {
      renderSales(await C.api("GET", "/merchants/" + merchantId + "/sales"));
    } catch (e) { /* the next refresh tries again */ }
  }

  loadSales();
  window.setInterval(loadSales, 15000);
})();
