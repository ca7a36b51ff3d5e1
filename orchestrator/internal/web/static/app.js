// swarmhub pages: no framework, no build step.
(function () {
  "use strict";
  var xsrfMeta = document.querySelector('meta[name="xsrf"]');
  var xsrf = xsrfMeta ? xsrfMeta.content : "";
  function api(method, path, body) {
    var opts = { method: method, headers: { "X-XSRFToken": xsrf, "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch("/hub/api" + path, opts).then(function (r) {
      if (r.status === 204) { return {}; }
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error(j.message || ("request failed: " + r.status)); e.status = r.status; e.retry = r.headers.get("Retry-After"); throw e; }
        return j;
      });
    });
  }
  function showError(msg) { var el = document.getElementById("msg"); if (el) { el.textContent = msg; el.hidden = false; } else { alert(msg); } }
  function on(id, fn) { var el = document.getElementById(id); if (el) { el.addEventListener("click", fn); } }
  var enc = encodeURIComponent;

  // home
  var home = document.getElementById("home");
  if (home) {
    var me = home.dataset.user;
    on("start", function () {
      api("POST", "/users/" + enc(me) + "/server").then(function () { location.href = "/hub/spawn-pending/" + enc(me); })
        .catch(function (e) { showError(e.message); });
    });
    on("stop", function () {
      api("DELETE", "/users/" + enc(me) + "/server").then(function () { location.reload(); }).catch(function (e) { showError(e.message); });
    });
  }

  // spawn progress
  var spawn = document.getElementById("spawn");
  if (spawn) {
    var user = spawn.dataset.user, next = spawn.dataset.next;
    var bar = document.getElementById("bar"), pmsg = document.getElementById("progress-message"), log = document.getElementById("log");
    var follow = function () {
      var es = new EventSource("/hub/api/users/" + enc(user) + "/server/progress");
      es.onmessage = function (m) {
        var ev = JSON.parse(m.data);
        bar.style.width = (ev.progress || 0) + "%";
        if (ev.message) { pmsg.textContent = ev.message; var li = document.createElement("li"); li.textContent = ev.message; log.appendChild(li); }
        if (ev.ready) { es.close(); location.href = next || ev.url; }
        if (ev.failed) { es.close(); showError(ev.message + " — press Try again; if it keeps failing, tell the course staff."); document.getElementById("retry").hidden = false; }
      };
      es.onerror = function () { es.close(); setTimeout(follow, 2000); };
    };
    var start = function (attempt) {
      api("POST", "/users/" + enc(user) + "/server").then(follow).catch(function (e) {
        if (e.status === 429 && attempt < 60) {
          var wait = parseInt(e.retry || "3", 10);
          pmsg.textContent = "Many servers are starting; yours is queued and starts in about " + wait + " s…";
          setTimeout(function () { start(attempt + 1); }, wait * 1000);
          return;
        }
        showError(e.message); document.getElementById("retry").hidden = false;
      });
    };
    on("retry", function () { document.getElementById("msg").hidden = true; this.hidden = true; start(0); });
    if (spawn.dataset.state === "starting") { follow(); } else { start(0); }
  }

  // admin
  var admin = document.getElementById("admin");
  if (admin) {
    admin.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-user]"); if (!b) { return; }
      var u = b.dataset.user, p;
      if (b.classList.contains("stop-user")) { p = api("DELETE", "/users/" + enc(u) + "/server"); }
      else if (b.classList.contains("start-user")) { p = api("POST", "/users/" + enc(u) + "/server"); }
      else if (b.classList.contains("block-user")) { if (!confirm("Block " + u + "? Their sessions end and their server stops.")) { return; } p = api("PATCH", "/users/" + enc(u), { blocked: true }); }
      else if (b.classList.contains("unblock-user")) { p = api("PATCH", "/users/" + enc(u), { blocked: false }); }
      else if (b.classList.contains("delete-user")) { if (!confirm("Delete " + u + "? Their workspace is kept.")) { return; } p = api("DELETE", "/users/" + enc(u)); }
      if (p) { b.disabled = true; p.then(function () { location.reload(); }).catch(function (e) { b.disabled = false; showError(e.message); }); }
    });
    var add = document.getElementById("add-users");
    if (add) {
      add.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var names = add.usernames.value.split(/[\s,;]+/).filter(Boolean);
        api("POST", "/users", { usernames: names, admin: add.admin.checked }).then(function () { location.reload(); }).catch(function (e) { showError(e.message); });
      });
    }
  }

  // tokens
  var tf = document.getElementById("token-form");
  if (tf) {
    var meUser = document.querySelector(".who").textContent;
    tf.addEventListener("submit", function (ev) {
      ev.preventDefault();
      api("POST", "/users/" + enc(meUser) + "/tokens", { note: tf.note.value }).then(function (j) {
        document.getElementById("token-value").textContent = j.token; document.getElementById("new-token").hidden = false;
      }).catch(function (e) { showError(e.message); });
    });
    document.querySelectorAll(".revoke-token").forEach(function (b) {
      b.addEventListener("click", function () { api("DELETE", "/users/" + enc(meUser) + "/tokens/" + enc(b.dataset.id)).then(function () { location.reload(); }); });
    });
  }
})();
