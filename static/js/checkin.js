/* The check-in screen: keyboard-wedge scanners, camera, manual search, walk-ins, and an offline
 * queue in IndexedDB that syncs by itself with the original scan times. Data comes from the
 * data- attributes of #checkin-app (no inline scripts). */
(function () {
  "use strict";

  const app = document.getElementById("checkin-app");
  if (!app) return;

  const cfg = {
    eventId: Number(app.dataset.eventId),
    dayId: Number(app.dataset.dayId),
    api: app.dataset.api,
    csrf: app.dataset.csrf,
    tokenUrl: app.dataset.tokenUrl,
    user: app.dataset.user || "",
  };
  const $ = (id) => document.getElementById(id);
  const CODE_RE = /^E([0-9]{1,10})-([A-Z2-7]{13})-([A-Z2-7]{16})$/;
  // The same normalisation as services/tickets.normalize_ticket_input (keep the two in step).
  const CODE_IN_TEXT_RE = /(?<![0-9A-Z])E[0-9]{1,10}-[A-Z2-7]{13}-[A-Z2-7]{16}(?![0-9A-Z])/;
  const DASHES_RE = /[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\ufe63\uff0d\u2043]/g;
  const QUOTES_RE = /^["'`\u300c\u300d\u300e\u300f\u201c\u201d\u2018\u2019]+|["'`\u300c\u300d\u300e\u300f\u201c\u201d\u2018\u2019]+$/g;

  function normalizeTicketInput(text) {
    let value = String(text || "").normalize("NFKC").replace(DASHES_RE, "-").replace(/\p{C}/gu, "");
    value = value.trim().replace(QUOTES_RE, "").trim().replace(/^\][A-Za-z][0-9A-Za-z]/, "").trim();
    const match = CODE_IN_TEXT_RE.exec(value.toUpperCase());
    return match ? match[0] : null;
  }
  const REQUEST_TIMEOUT_MS = 8000;
  const SW_CACHE = "eventapp-checkin-v1"; // the cache name in checkin-sw.js

  const state = {
    online: navigator.onLine,
    roster: null,            // the server's snapshot, plus local pending check-ins
    byHash: new Map(),
    byId: new Map(),
    lastSeenId: 0,
    last: null,              // the last check-in made on this device: {id} or {nonce}
    syncing: false,
    key: null,
  };

  const deviceId = (() => {
    let id = localStorage.getItem("eventapp-device-id");
    if (!id) {
      id = "dev-" + randomId();
      localStorage.setItem("eventapp-device-id", id);
    }
    return id;
  })();

  function randomId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /* ---------- IndexedDB: the roster cache and the offline queue ---------- */

  const dbPromise = new Promise((resolve, reject) => {
    const request = indexedDB.open("eventapp-checkin", 2);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains("roster")) db.createObjectStore("roster");
      if (!db.objectStoreNames.contains("queue")) db.createObjectStore("queue", { keyPath: "nonce" });
      // Fees taken at the door while offline, sent later with their nonce (never recorded twice).
      if (!db.objectStoreNames.contains("payments")) db.createObjectStore("payments", { keyPath: "nonce" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

  async function idb(storeName, mode, action) {
    const db = await dbPromise;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const request = action(tx.objectStore(storeName));
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  async function queued() {
    const all = await idb("queue", "readonly", (s) => s.getAll());
    return (all || []).filter((item) => item.event === cfg.eventId)
      .sort((a, b) => a.scanned_at.localeCompare(b.scanned_at));
  }

  async function queuedPayments() {
    const all = await idb("payments", "readonly", (s) => s.getAll());
    return (all || []).filter((item) => item.event === cfg.eventId);
  }

  /* ---------- server calls ---------- */

  class NetworkError extends Error {}

  async function api(method, path, body, retried) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(cfg.api + path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": cfg.csrf, Accept: "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (err) {
      setOnline(false);
      throw new NetworkError(String(err));
    } finally {
      clearTimeout(timer);
    }
    setOnline(true);
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    const code = data && data.error && data.error.code;
    if (code === "csrf_failed" && !retried) {
      await refreshToken();
      return api(method, path, body, true);
    }
    return { status: response.status, data };
  }

  async function refreshToken() {
    try {
      const response = await fetch(cfg.tokenUrl, { credentials: "same-origin" });
      if (response.ok) cfg.csrf = (await response.json()).csrf;
    } catch (err) { /* offline: keep the old token */ }
  }

  /* ---------- online / offline ---------- */

  function setOnline(value) {
    if (state.online === value) return;
    state.online = value;
    renderBadge();
    if (value) sync();
  }

  function renderBadge() {
    const badge = $("net-badge");
    badge.textContent = state.online ? "オンライン" : "オフライン";
    badge.className = "net-badge " + (state.online ? "net-online" : "net-offline");
    app.dataset.online = state.online ? "1" : "0";
  }

  window.addEventListener("online", () => { setOnline(true); sync(); });
  window.addEventListener("offline", () => setOnline(false));

  /* ---------- roster ---------- */

  function indexRoster(roster) {
    state.roster = roster;
    state.byHash = new Map();
    state.byId = new Map();
    for (const entry of roster.registrations) {
      state.byHash.set(entry.code_hash, entry);
      state.byId.set(entry.id, entry);
      for (const c of entry.checkins) state.lastSeenId = Math.max(state.lastSeenId, c.id || 0);
    }
    state.key = null;
  }

  async function loadRoster() {
    const cached = await idb("roster", "readonly", (s) => s.get(cfg.eventId)).catch(() => null);
    if (cached && !state.roster) {
      indexRoster(cached);
      await applyPending();
      renderCounters();
    }
    try {
      const { status, data } = await api("GET", "/checkins/roster");
      if (status === 200) {
        indexRoster(data);
        await idb("roster", "readwrite", (s) => s.put(data, cfg.eventId));
        await applyPending();
        renderCounters();
      } else if (status === 401) {
        showResult("error", "ログインが必要です", "", [], "ページを再読み込みしてログインしてください。");
      }
    } catch (err) { /* offline: the cached roster is used */ }
  }

  async function applyPending() {
    for (const item of await queued()) markLocal(item);
  }

  function markLocal(item) {
    const entry = state.byId.get(item.registration_id);
    if (!entry) return;
    if (!entry.checkins.some((c) => c.day === item.day)) {
      entry.checkins.push({ nonce: item.nonce, day: item.day, checked_in_at: item.scanned_at, by: cfg.user, pending: true });
    }
  }

  function dayCheckin(entry) {
    return entry.checkins.find((c) => c.day === cfg.dayId);
  }

  /* ---------- offline validation (signature + cached roster) ---------- */

  function base32(bytes) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = 0, value = 0, out = "";
    for (const b of bytes) {
      value = (value << 8) | b;
      bits += 8;
      while (bits >= 5) {
        out += alphabet[(value >>> (bits - 5)) & 31];
        bits -= 5;
      }
    }
    if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
    return out;
  }

  function hexBytes(hex) {
    return new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
  }

  async function sha256hex(text) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function signatureValid(eventId, ident, signature) {
    if (!crypto.subtle || !state.roster || !state.roster.ticket_key) return true; // the hash lookup still guards
    if (!state.key) {
      state.key = await crypto.subtle.importKey("raw", hexBytes(state.roster.ticket_key),
        { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    }
    const mac = await crypto.subtle.sign("HMAC", state.key, new TextEncoder().encode(`E${eventId}-${ident}`));
    return base32(new Uint8Array(mac).slice(0, 10)) === signature;
  }

  const LOCAL_ERRORS = {
    invalid_signature: "この受付コードは無効です(改ざんまたは偽造の可能性があります)。",
    not_a_ticket: "チケットのQRコードではありません。",
    wrong_event: "別のイベントの受付コードです。",
    unknown_code: "名簿にない受付コードです(オンラインになってから再度お試しください)。",
    cancelled: "このお申し込みはキャンセル済みです。",
    waitlisted: "この方はキャンセル待ちのため、参加が確定していません。",
    no_roster: "名簿がまだ読み込まれていません。オンラインで一度開いてください。",
  };

  // The result's heading per error, the same online (server's code) and offline (local check).
  const ERROR_TITLES = { unknown_code: "見つかりません", cancelled: "キャンセル済み", waitlisted: "キャンセル待ち",
    wrong_event: "別のイベント", invalid_signature: "無効なコード", not_a_ticket: "チケットではありません",
    unauthorized: "ログインが必要です" };

  async function localLookup(item) {
    if (!state.roster) return { error: "no_roster" };
    let entry;
    if (item.code) {
      const match = CODE_RE.exec(item.code);
      if (!match) return { error: "not_a_ticket" };
      if (Number(match[1]) !== cfg.eventId) return { error: "wrong_event" };
      if (!(await signatureValid(match[1], match[2], match[3]))) return { error: "invalid_signature" };
      entry = state.byHash.get(await sha256hex(item.code));
    } else {
      entry = state.byId.get(item.registration_id);
    }
    if (!entry) return { error: "unknown_code" };
    if (entry.status === "cancelled" || entry.status === "waitlisted") return { error: entry.status, entry };
    return { entry };
  }

  /* ---------- check-in ---------- */

  async function checkInCode(raw) {
    const text = String(raw || "").trim();
    if (!text) return;
    state.lastRead = text;  // shown with an error, so staff see what the scanner really sent
    // Text without a code (e.g. a manage-page URL) still goes to the server, which knows more.
    await submit({ code: normalizeTicketInput(text) || text.slice(0, 200) });
  }

  async function submit(target) {
    const item = {
      nonce: randomId(), event: cfg.eventId, day: cfg.dayId, scanned_at: new Date().toISOString(),
      device_id: deviceId, ...target,
    };
    if (state.online) {
      try {
        const body = { nonce: item.nonce, day: item.day, scanned_at: item.scanned_at, device_id: deviceId };
        if (item.code) body.code = item.code; else body.registration_id = item.registration_id;
        const { status, data } = await api("POST", "/checkins", body);
        return showServerResult(status, data);
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
      }
    }
    return offlineCheckIn(item);
  }

  function showServerResult(status, data) {
    if (status === 200) {
      const reg = data.registration;
      const entry = state.byId.get(reg.id);
      if (data.result === "checked_in") {
        state.last = { id: data.checkin_id, name: reg.name, walkin: reg.source === "walkin" };
        $("undo-last").disabled = false;
        $("undo-walkin").hidden = !state.last.walkin;
        if (entry && !dayCheckin(entry)) {
          entry.checkins.push({ id: data.checkin_id, day: data.day, checked_in_at: data.checked_in_at, by: data.by });
        }
        addRecent(reg.name, data.checked_in_at, false, data.checkin_id);
        const detail = data.over_capacity ? "定員を超えています(当日参加として受付済み)" : "";
        showResult("ok", "受付完了", reg.name, reg.notes, detail, reg.furigana);
      } else {
        showResult("warn", `受付済み ${hhmm(data.checked_in_at)}${data.by ? ` (${data.by})` : ""}`, reg.name,
          reg.notes, "この方は既に受付されています。", reg.furigana);
      }
      if (entry) Object.assign(entry, { fee_yen: reg.fee_yen, payment_status: reg.payment_status });
      showFee({ id: reg.id, name: reg.name, fee_yen: reg.fee_yen, payment_status: reg.payment_status });
      renderCounters();
      return data;
    }
    const error = (data && data.error) || { code: "server_error", message: "エラーが発生しました。" };
    showResult("error", ERROR_TITLES[error.code] || "受付できません", "", [], error.message);
    app.dataset.lastError = error.code;
    return null;
  }

  async function offlineCheckIn(item) {
    const { error, entry } = await localLookup(item);
    if (error) {
      app.dataset.lastError = error;
      showResult("error", ERROR_TITLES[error] || "受付できません", entry ? entry.name : "", [], LOCAL_ERRORS[error]);
      return null;
    }
    const existing = dayCheckin(entry);
    if (existing) {
      showResult("warn", `受付済み ${hhmm(existing.checked_in_at)}${existing.by ? ` (${existing.by})` : ""}`,
        entry.name, entry.notes, existing.pending ? "この端末で受付済み(未送信)" : "この方は既に受付されています。",
        entry.furigana);
      showFee(entry);
      return null;
    }
    item.registration_id = entry.id;
    item.name = entry.name;
    await idb("queue", "readwrite", (s) => s.put(item));
    markLocal(item);
    state.last = { nonce: item.nonce, name: entry.name };
    $("undo-walkin").hidden = true;
    $("undo-last").disabled = false;
    addRecent(entry.name, item.scanned_at, true, null, item.nonce);
    showResult("ok", "受付完了", entry.name, entry.notes, "オフライン: 接続が戻ると自動で送信します", entry.furigana, true);
    showFee(entry);
    await renderPending();
    renderCounters();
    return item;
  }

  /* ---------- fees (参加費): one tap records 当日現金 支払済み ---------- */

  const FEE_STATUS = { unpaid: "未払い", paid: "支払済み", waived: "免除", refunded: "返金済み" };

  function yen(amount) {
    return `${Number(amount).toLocaleString("ja-JP")}円`;
  }

  // What the fee panel offers: the nonce is chosen when the panel opens, so a double tap or a retry
  // after a timeout sends the same nonce and the server records one payment.
  function showFee(entry) {
    const box = $("result-fee");
    const button = $("fee-pay");
    state.fee = null;
    if (!entry || !entry.fee_yen || !entry.payment_status || entry.payment_status === "none") {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const owing = entry.payment_status === "unpaid" || entry.payment_status === "refunded";
    const pending = entry.payment_pending ? "(未送信)" : "";
    $("fee-line").textContent = `参加費 ${yen(entry.fee_yen)} ${FEE_STATUS[entry.payment_status] || ""}${pending}`;
    box.dataset.status = entry.payment_status;
    button.hidden = !owing;
    button.disabled = false;
    if (owing) {
      state.fee = { registration_id: entry.id, amount_yen: entry.fee_yen, name: entry.name, nonce: randomId() };
      button.textContent = `当日現金 ${yen(entry.fee_yen)} を受け取った(支払済みにする)`;
    }
  }

  async function payCash() {
    const fee = state.fee;
    if (!fee) return;
    $("fee-pay").disabled = true;
    const item = { ...fee, event: cfg.eventId, method: "cash", recorded_at: new Date().toISOString() };
    if (state.online) {
      try {
        const { status, data } = await api("POST", "/payments", paymentBody(item));
        if (status === 200 || status === 201) return paymentDone(item, data.payment, false);
        const error = (data && data.error) || { message: "エラーが発生しました。" };
        $("fee-line").textContent = `参加費を記録できません: ${error.message}`;
        $("fee-pay").disabled = false;
        return null;
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
      }
    }
    await idb("payments", "readwrite", (s) => s.put(item));
    return paymentDone(item, null, true);
  }

  function paymentBody(item) {
    return { registration_id: item.registration_id, method: item.method, amount_yen: item.amount_yen,
      nonce: item.nonce };
  }

  async function paymentDone(item, payment, pending) {
    const entry = state.byId.get(item.registration_id);
    const shown = entry || { id: item.registration_id, name: item.name, fee_yen: item.amount_yen };
    Object.assign(shown, { payment_status: "paid", payment_pending: pending });
    showFee(shown);
    app.dataset.lastPayment = payment ? String(payment.id) : "pending";
    await renderPending();
    return payment;
  }

  async function syncPayments(notes) {
    for (const item of await queuedPayments()) {
      const { status, data } = await api("POST", "/payments", paymentBody(item));
      if (status >= 500) continue;  // try again later
      if (status !== 200 && status !== 201) {
        notes.push(`参加費を記録できませんでした: ${item.name} — ${(data && data.error && data.error.message) || status}`);
      }
      const entry = state.byId.get(item.registration_id);
      if (entry) entry.payment_pending = false;
      await idb("payments", "readwrite", (s) => s.delete(item.nonce));
    }
  }

  /* ---------- sync of the offline queue ---------- */

  async function sync() {
    if (state.syncing || !state.online) return;
    const items = await queued();
    if (!items.length) {
      await syncFees();
      return renderPending();
    }
    state.syncing = true;
    try {
      const scans = items.map((i) => {
        const scan = { nonce: i.nonce, day: i.day, scanned_at: i.scanned_at };
        if (i.code) scan.code = i.code; else scan.registration_id = i.registration_id;
        return scan;
      });
      const { status, data } = await api("POST", "/checkins/batch", { device_id: deviceId, scans });
      if (status !== 200) {
        showSyncNotice([`未送信の受付を送れませんでした: ${(data && data.error && data.error.message) || status}`]);
        return;
      }
      const notes = [];
      const byNonce = new Map(items.map((i) => [i.nonce, i]));
      for (const r of data.results) {
        const item = byNonce.get(r.nonce);
        if (r.result === "duplicate") {
          notes.push(`重複: ${item ? item.name : ""} さんは他の端末で ${hhmm(r.checked_in_at)}${r.by ? ` (${r.by})` : ""} に受付済みでした(先の受付が有効)。`);
        } else if (r.result === "checked_in" && r.duplicate_checkin_id) {
          notes.push(`重複: ${item ? item.name : ""} さんは他の端末でも受付されていました(この端末の ${hhmm(r.checked_in_at)} の受付が先のため有効)。`);
        } else if (r.result === "error") {
          notes.push(`送信できなかった受付: ${item ? item.name : ""} — ${r.error.message}`);
        }
        if (state.last && state.last.nonce === r.nonce && r.result === "checked_in") {
          state.last = { id: r.checkin_id, name: state.last.name };
        }
        await idb("queue", "readwrite", (s) => s.delete(r.nonce));
      }
      // Payments after the check-ins: a payment taken offline names a registration the batch admitted.
      await syncPayments(notes);
      if (notes.length) showSyncNotice(notes);
      for (const li of document.querySelectorAll("#recent .pending-item")) li.classList.remove("pending-item");
      await loadRoster();
    } catch (err) {
      if (!(err instanceof NetworkError)) throw err;
    } finally {
      state.syncing = false;
      await renderPending();
    }
  }

  async function syncFees() {
    if (state.syncing || !(await queuedPayments()).length) return;
    state.syncing = true;
    const notes = [];
    try {
      await syncPayments(notes);
      if (notes.length) showSyncNotice(notes);
    } catch (err) {
      if (!(err instanceof NetworkError)) throw err;
    } finally {
      state.syncing = false;
    }
  }

  function showSyncNotice(lines) {
    const box = $("sync-notice");
    box.hidden = false;
    box.replaceChildren(...lines.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }));
  }

  async function renderPending() {
    const count = (await queued()).length;
    const fees = (await queuedPayments()).length;
    $("pending-count").textContent = String(count + fees);
    app.dataset.pending = String(count);  // check-ins only: added to the server's count of check-ins
    app.dataset.pendingPayments = String(fees);
  }

  /* ---------- undo ---------- */

  async function undoLast(cancelWalkIn) {
    const last = state.last;
    if (!last) return;
    cancelWalkIn = cancelWalkIn === true && last.walkin;
    if (last.nonce) {
      await idb("queue", "readwrite", (s) => s.delete(last.nonce));
      for (const entry of state.byId.values()) {
        entry.checkins = entry.checkins.filter((c) => c.nonce !== last.nonce);
      }
      markRecentUndone(last.nonce);
    } else {
      let result;
      try {
        result = await api("DELETE", `/checkins/${last.id}`, cancelWalkIn ? { cancel_walkin: true } : undefined);
      } catch (err) {
        showResult("error", "取り消せません", last.name, [], "オフラインのため取り消せません。接続後にもう一度お試しください。");
        return;
      }
      if (result.status !== 200) {
        showResult("error", "取り消せません", last.name, [], result.data.error.message);
        return;
      }
      for (const entry of state.byId.values()) {
        entry.checkins = entry.checkins.filter((c) => c.id !== last.id);
      }
      markRecentUndone(String(last.id));
    }
    state.last = null;
    $("undo-last").disabled = true;
    $("undo-walkin").hidden = true;
    showResult("warn", "取り消しました", last.name, [],
      cancelWalkIn ? "受付と当日参加の登録を取り消しました。" : "受付を取り消しました。");
    if (cancelWalkIn) await loadRoster();
    await renderPending();
    renderCounters();
  }

  /* ---------- counters (polled, so all devices agree within seconds) ---------- */

  function renderCounters(stats) {
    if (stats) {
      $("count-checked").textContent = String(stats.checked_in + pendingCount());
      $("count-confirmed").textContent = String(stats.confirmed);
      const dup = $("count-duplicates");
      dup.hidden = !stats.duplicates;
      dup.textContent = stats.duplicates ? `重複記録 ${stats.duplicates} 件(名簿画面で確認)` : "";
      return;
    }
    if (!state.roster) return;
    let checked = 0, confirmed = 0;
    for (const entry of state.byId.values()) {
      if (entry.status === "confirmed") confirmed += 1;
      if (dayCheckin(entry)) checked += 1;
    }
    $("count-checked").textContent = String(checked);
    $("count-confirmed").textContent = String(confirmed);
  }

  function pendingCount() {
    return Number(app.dataset.pending || 0);
  }

  async function poll() {
    if (!state.online && navigator.onLine === false) return;
    try {
      const { status, data } = await api("GET", `/checkins?day=${cfg.dayId}&after=${state.lastSeenId}`);
      if (status !== 200) return;
      for (const row of data.recent) {
        state.lastSeenId = Math.max(state.lastSeenId, row.id);
        const entry = state.byId.get(row.registration_id);
        if (!entry) continue;
        entry.checkins = entry.checkins.filter((c) => c.id !== row.id);
        if (row.active) entry.checkins.push(row);
      }
      renderCounters(data);
    } catch (err) { /* offline */ }
  }

  /* ---------- manual search ---------- */

  function normalise(text) {
    return String(text || "").normalize("NFKC").toLowerCase()
      .replace(/[\u30a1-\u30f6]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) - 0x60))
      .replace(/\s+/g, "");
  }

  function search(query) {
    const list = $("search-results");
    list.replaceChildren();
    const q = normalise(query);
    if (!q || !state.roster) return;
    const digits = q.replace(/\D/g, "");
    const matches = [];
    for (const entry of state.byId.values()) {
      if (entry.status === "cancelled") continue;
      const hit = normalise(entry.name).includes(q) || normalise(entry.furigana).includes(q) ||
        (digits.length >= 3 && digits === q.replace(/-/g, "") && entry.phone_digits.includes(digits));
      if (hit) matches.push(entry);
      if (matches.length >= 30) break;
    }
    for (const entry of matches) list.append(searchRow(entry));
    if (!matches.length) {
      const li = document.createElement("li");
      li.textContent = "見つかりません";
      list.append(li);
    }
  }

  function searchRow(entry) {
    const li = document.createElement("li");
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = entry.name;
    const kana = document.createElement("span");
    const existing = dayCheckin(entry);
    const statusText = entry.status === "waitlisted" ? " · キャンセル待ち" :
      existing ? ` · 受付済み ${hhmm(existing.checked_in_at)}` : "";
    kana.textContent = entry.furigana + statusText;
    who.append(kana);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button button-primary";
    button.textContent = "受付";
    button.disabled = entry.status !== "confirmed";
    button.addEventListener("click", async () => {
      await submit({ registration_id: entry.id });
      $("search-input").value = "";
      $("search-results").replaceChildren();
      focusScan();
    });
    li.append(who, button);
    return li;
  }

  /* ---------- walk-in ---------- */

  function openWalkIn(open) {
    $("walkin-form").hidden = !open;
    if (open) {
      const r = state.roster;
      const confirmed = r ? r.registrations.filter((e) => e.status === "confirmed").length : 0;
      const warn = $("walkin-warning");
      warn.hidden = !(r && confirmed >= r.event.capacity);
      warn.textContent = `定員(${r ? r.event.capacity : "-"}名)に達しています。登録すると定員を超えて参加確定になります。`;
      $("walkin-name").focus();
    } else {
      focusScan();
    }
  }

  async function submitWalkIn(event) {
    event.preventDefault();
    const form = $("walkin-form");
    const errors = $("walkin-errors");
    errors.textContent = "";
    if (!state.online) {
      errors.textContent = "オフラインでは当日参加を登録できません。接続が戻ってからお試しください。";
      return;
    }
    const data = { answers: {} };
    for (const [name, value] of new FormData(form).entries()) {
      // Question fields are "answers.<key>"; an empty one is simply not answered (never blocks the door).
      if (name.startsWith("answers.")) { if (value.trim()) data.answers[name.slice(8)] = value; } else data[name] = value;
    }
    if (!data.phone) delete data.phone;
    data.send_mail = data.send_mail === "1"; // unticked (the default): no mail to the address given
    Object.assign(data, { nonce: form.dataset.nonce || randomId(), day: cfg.dayId, device_id: deviceId });
    form.dataset.nonce = data.nonce; // a retry after a timeout must not register the person twice
    let result;
    try {
      result = await api("POST", "/walkins", data);
    } catch (err) {
      errors.textContent = "送信できませんでした。接続を確認してもう一度お試しください。";
      return;
    }
    if (result.status === 200) {
      delete form.dataset.nonce;
      form.reset();
      openWalkIn(false);
      showServerResult(200, result.data);
      await loadRoster();
    } else {
      const err = result.data.error;
      const fields = Object.values(err.fields || {});
      errors.textContent = [err.message, ...fields].join(" ");
    }
  }

  /* ---------- camera: BarcodeDetector where it exists, jsQR from static/vendor otherwise ---------- */

  const camera = { stream: null, detector: null, busy: false, lastText: "", lastAt: 0, timer: null };

  async function startCamera() {
    const note = $("camera-note");
    $("camera-box").hidden = false;
    try {
      camera.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (err) {
      note.textContent = "カメラを使えません(ブラウザの設定でカメラを許可してください)。";
      return;
    }
    const video = $("camera");
    video.srcObject = camera.stream;
    await video.play().catch(() => {});
    camera.detector = null;
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) camera.detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      } catch (err) { camera.detector = null; }
    }
    app.dataset.decoder = camera.detector ? "BarcodeDetector" : "jsQR";
    note.textContent = "";
    $("camera-toggle").textContent = "カメラを止める";
    scanLoop();
  }

  function stopCamera() {
    if (camera.stream) camera.stream.getTracks().forEach((t) => t.stop());
    camera.stream = null;
    clearTimeout(camera.timer);
    $("camera-box").hidden = true;
    $("camera-toggle").textContent = "カメラで読み取る";
    focusScan();
  }

  async function decodeFrame(video) {
    if (camera.detector) {
      const codes = await camera.detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    }
    if (typeof window.jsQR !== "function" || !video.videoWidth) return null;
    const canvas = $("camera-canvas");
    const scale = Math.min(1, 640 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  }

  async function scanLoop() {
    if (!camera.stream) return;
    if (!camera.busy) {
      camera.busy = true;
      try {
        const text = await decodeFrame($("camera"));
        const now = Date.now();
        // The same ticket stays in front of the camera for a while: read it once.
        if (text && (text !== camera.lastText || now - camera.lastAt > 4000)) {
          camera.lastText = text;
          camera.lastAt = now;
          await checkInCode(text);
        }
      } catch (err) { /* a frame that cannot be read */ }
      camera.busy = false;
    }
    camera.timer = setTimeout(scanLoop, 150);
  }

  /* ---------- output: result panel, sound, vibration ---------- */

  let audio = null;

  function beep(kind) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = kind === "ok" ? 1320 : kind === "warn" ? 660 : 220;
      osc.type = kind === "error" ? "square" : "sine";
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + (kind === "ok" ? 0.12 : 0.35));
    } catch (err) { /* no audio */ }
    if (navigator.vibrate) navigator.vibrate(kind === "ok" ? 80 : kind === "warn" ? [120, 80, 120] : [300, 100, 300]);
  }

  function showResult(kind, title, name, notes, detail, furigana, pending) {
    const panel = $("result");
    panel.className = `result result-${kind}${pending ? " result-pending" : ""}`;
    panel.dataset.state = kind;
    $("result-fee").hidden = true;  // showFee() opens it for the person just shown
    state.fee = null;
    $("result-title").textContent = title;
    $("result-name").textContent = name || "";
    $("result-kana").textContent = furigana || "";
    $("result-notes").replaceChildren(...(notes || []).map((n) => {
      const li = document.createElement("li");
      li.textContent = `${n.important ? "⚠ 重要 " : ""}${n.label}: ${n.value}`;
      if (n.important) li.className = "note-important";  // allergies etc.: the door must not miss them
      return li;
    }));
    $("result-detail").textContent = detail || "";
    $("result-read").textContent = kind === "error" && state.lastRead ? `読み取った文字: ${state.lastRead}` : "";
    state.lastRead = "";
    beep(kind);
  }

  function addRecent(name, at, pending, id, nonce) {
    const li = document.createElement("li");
    li.textContent = `${hhmm(at)} ${name}`;
    li.dataset.key = nonce || String(id);
    if (pending) li.className = "pending-item";
    const list = $("recent");
    list.prepend(li);
    while (list.children.length > 30) list.lastChild.remove();
  }

  function markRecentUndone(key) {
    const li = document.querySelector(`#recent li[data-key="${CSS.escape(key)}"]`);
    if (li) li.className = "undone";
  }

  function hhmm(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString("ja-JP", { hour: "2-digit", minute: "2-digit", timeZone: "Asia/Tokyo" });
  }

  /* ---------- keyboard-wedge input: always listening ---------- */

  const scanInput = $("scan-input");

  function focusScan() {
    const active = document.activeElement;
    const busyElsewhere = active && active !== scanInput && active !== document.body &&
      active.matches("input, textarea, select");
    if (!busyElsewhere) scanInput.focus({ preventScroll: true });
  }

  $("scan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = scanInput.value;
    scanInput.value = "";
    checkInCode(value);
  });
  scanInput.addEventListener("blur", () => setTimeout(focusScan, 200));
  document.addEventListener("click", (event) => {
    if (!event.target.closest("input, textarea, select, form, .search-results")) setTimeout(focusScan, 0);
  });

  $("undo-last").addEventListener("click", () => undoLast(false));
  $("undo-walkin").addEventListener("click", () => undoLast(true));
  $("camera-toggle").addEventListener("click", () => (camera.stream ? stopCamera() : startCamera()));
  $("walkin-open").addEventListener("click", () => openWalkIn($("walkin-form").hidden));
  $("walkin-cancel").addEventListener("click", () => openWalkIn(false));
  $("walkin-form").addEventListener("submit", submitWalkIn);
  $("search-input").addEventListener("input", (event) => search(event.target.value));
  $("fee-pay").addEventListener("click", payCash);

  /* ---------- start ---------- */

  if ("serviceWorker" in navigator && app.dataset.sw) {
    navigator.serviceWorker.register(app.dataset.sw, { scope: app.dataset.scope })
      // This first page load did not pass through the worker: store it too, so reopening works offline.
      .then(() => navigator.serviceWorker.ready)
      .then(() => caches.open(SW_CACHE))
      .then((cache) => cache.add(location.href))
      .then(() => { app.dataset.offlineReady = "1"; })
      .catch(() => {});
  }
  renderBadge();
  (async () => {
    await loadRoster();
    await renderPending();
    await sync();
    await poll();
    app.dataset.ready = "1";
  })();
  setInterval(poll, 3000);
  setInterval(sync, 15000);
  setInterval(loadRoster, 60000);
  setInterval(refreshToken, 20 * 60 * 1000);
  focusScan();
})();
