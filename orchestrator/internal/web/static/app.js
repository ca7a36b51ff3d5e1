// swarmhub pages: no framework, no build step, no inline script (CSP).
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
  function showError(msg) { var el = document.getElementById("msg"); if (el) { el.textContent = msg; el.hidden = false; el.scrollIntoView({ block: "nearest" }); } else { alert(msg); } }
  var toastTimer;
  function toast(msg, bad) {
    var t = document.getElementById("toast");
    if (!t) { if (bad) { showError(msg); } return; }
    t.textContent = msg; t.className = "toast" + (bad ? " bad" : ""); t.hidden = false;
    clearTimeout(toastTimer); toastTimer = setTimeout(function () { t.hidden = true; }, bad ? 8000 : 3000);
  }
  function on(id, fn) { var el = document.getElementById(id); if (el) { el.addEventListener("click", fn); } }
  var enc = encodeURIComponent;

  // followProgress reads the spawn progress stream of user into bar/message
  // elements and calls done(ev) on ready or failed.
  function followProgress(user, bar, pmsg, log, done) {
    var es = new EventSource("/hub/api/users/" + enc(user) + "/server/progress");
    es.onmessage = function (m) {
      var ev = JSON.parse(m.data);
      if (bar) { bar.style.width = Math.max(3, ev.progress || 0) + "%"; }
      if (ev.message) {
        if (pmsg) { pmsg.textContent = ev.message; }
        if (log) { var li = document.createElement("li"); li.textContent = ev.message; log.appendChild(li); }
      }
      if (ev.ready || ev.failed) { es.close(); done(ev); }
    };
    es.onerror = function () { es.close(); setTimeout(function () { followProgress(user, bar, pmsg, log, done); }, 2000); };
  }

  // home
  var home = document.getElementById("home");
  if (home) {
    var me = home.dataset.user;
    on("start", function () {
      this.disabled = true;
      api("POST", "/users/" + enc(me) + "/server").then(function () { location.href = "/hub/spawn-pending/" + enc(me); })
        .catch(function (e) {
          document.getElementById("start").disabled = false;
          showError(e.status === 429 ? "Many servers are starting right now. Try again in a few seconds." : e.message);
        });
    });
    on("stop", function () {
      this.disabled = true; this.textContent = "Stopping…";
      api("DELETE", "/users/" + enc(me) + "/server").then(function () { location.reload(); }).catch(function (e) { showError(e.message); });
    });
    if (home.dataset.state === "starting" && document.getElementById("bar")) {
      followProgress(me, document.getElementById("bar"), document.getElementById("progress-message"), null, function () { location.reload(); });
    }
  }

  // spawn progress
  var spawn = document.getElementById("spawn");
  if (spawn) {
    var user = spawn.dataset.user, next = spawn.dataset.next;
    var bar = document.getElementById("bar"), pmsg = document.getElementById("progress-message"), log = document.getElementById("log");
    var follow = function () {
      followProgress(user, bar, pmsg, log, function (ev) {
        if (ev.ready) { bar.style.width = "100%"; pmsg.textContent = "Ready! Opening your server…"; location.href = next || ev.url; return; }
        bar.classList.add("failed");
        showError(ev.message + " — press Try again; if it keeps failing, tell the course staff and quote this message.");
        document.getElementById("retry").hidden = false;
      });
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
    on("retry", function () { document.getElementById("msg").hidden = true; this.hidden = true; bar.style.width = "0"; start(0); });
    if (spawn.dataset.state === "starting") { follow(); } else { start(0); }
  }

  // admin dashboard
  var admin = document.getElementById("admin");
  if (admin) {
    var dialog = document.getElementById("confirm-dialog");
    var confirmThen = function (title, text, okLabel, fn) {
      if (!dialog || typeof dialog.showModal !== "function") { if (confirm(text)) { fn(); } return; }
      document.getElementById("confirm-title").textContent = title;
      document.getElementById("confirm-text").textContent = text;
      document.getElementById("confirm-ok").textContent = okLabel;
      dialog.returnValue = "";
      dialog.onclose = function () { if (dialog.returnValue === "ok") { fn(); } };
      dialog.showModal();
    };
    admin.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-user]"); if (!b) { return; }
      var u = b.dataset.user;
      var run = function (p, done) {
        b.disabled = true;
        p.then(function () { toast(done); setTimeout(function () { location.reload(); }, 400); })
          .catch(function (e) { b.disabled = false; toast(e.message, true); });
      };
      if (b.classList.contains("stop-user")) {
        confirmThen("Stop " + u + "'s server?", "Running kernels end and unsaved work in open notebooks is lost. The files stay.", "Stop server",
          function () { run(api("DELETE", "/users/" + enc(u) + "/server"), "Stopped " + u + "'s server"); });
      } else if (b.classList.contains("start-user")) {
        run(api("POST", "/users/" + enc(u) + "/server"), "Starting " + u + "'s server");
      } else if (b.classList.contains("block-user")) {
        confirmThen("Block " + u + "?", u + " is logged out everywhere, their server stops, and they cannot log in until unblocked. Their files stay.", "Block",
          function () { run(api("PATCH", "/users/" + enc(u), { blocked: true }), "Blocked " + u); });
      } else if (b.classList.contains("unblock-user")) {
        run(api("PATCH", "/users/" + enc(u), { blocked: false }), "Unblocked " + u);
      } else if (b.classList.contains("delete-user")) {
        confirmThen("Delete " + u + "?", "The account, its tokens and its server go. The workspace is kept on disk.", "Delete",
          function () { run(api("DELETE", "/users/" + enc(u)), "Deleted " + u); });
      }
    });
    var sf = document.getElementById("state-filter");
    if (sf) { sf.addEventListener("change", function () { document.getElementById("user-search").submit(); }); }
    var add = document.getElementById("add-users");
    if (add) {
      add.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var names = add.usernames.value.split(/[\s,;]+/).filter(Boolean);
        if (names.length === 0) { toast("Paste at least one username.", true); return; }
        api("POST", "/users", { usernames: names, admin: add.admin.checked }).then(function (j) {
          var r = document.getElementById("add-result");
          r.textContent = "Added " + j.length + " of " + names.length + " (the others existed already)."; r.hidden = false;
          setTimeout(function () { location.reload(); }, 900);
        }).catch(function (e) { toast(e.message, true); });
      });
    }
    var imf = document.getElementById("image-form");
    if (imf) {
      imf.addEventListener("submit", function (ev) {
        ev.preventDefault();
        api("PUT", "/image", { image: imf.image.value }).then(function (j) { toast("New servers now start with " + j.image); setTimeout(function () { location.reload(); }, 700); })
          .catch(function (e) { toast(e.message, true); });
      });
    }
    var rf = document.getElementById("restart-form");
    if (rf) {
      rf.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var idle = rf.idle.value.trim() || "10m";
        confirmThen("Restart outdated servers?", "Servers on an older image that have been idle for at least " + idle + " stop and start again on the current image. Active ones are left alone.", "Restart",
          function () {
            var btn = document.getElementById("restart-outdated"); btn.disabled = true;
            api("POST", "/image/restart-outdated?idle=" + enc(idle)).then(function (j) {
              var r = document.getElementById("restart-result");
              var failed = Object.keys(j.failed || {});
              r.textContent = "Restarted " + j.restarted.length + (j.restarted.length ? " (" + j.restarted.join(", ") + ")" : "") +
                "; still active, left alone: " + j.skipped_active.length + (failed.length ? "; failed: " + failed.join(", ") : "") + ".";
              r.hidden = false; btn.disabled = false;
            }).catch(function (e) { btn.disabled = false; toast(e.message, true); });
          });
      });
    }

    // announcement
    var af = document.getElementById("announce-form");
    if (af) {
      af.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = { message: af.message.value.trim() };
        if (af.expires_in.value.trim()) { body.expires_in = af.expires_in.value.trim(); }
        api("PUT", "/announcement", body).then(function () { toast("Announced"); setTimeout(function () { location.reload(); }, 500); })
          .catch(function (e) { toast(e.message, true); });
      });
      on("announce-clear", function () {
        api("DELETE", "/announcement").then(function () { location.reload(); }).catch(function (e) { toast(e.message, true); });
      });
    }

    // before the lecture: pre-start schedules, start/stop a group
    var pf = document.getElementById("prestart-form");
    if (pf) {
      pf.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var when = pf.when.value.trim(), body = { name: pf.name.value.trim(), group: pf.group.value,
          lead: pf.lead.value.trim(), grace: pf.grace.value.trim(), rate_per_minute: parseInt(pf.rate_per_minute.value, 10) || 0 };
        if (/^\d{4}-\d{2}-\d{2}/.test(when)) { body.times = when.split(/\s*,\s*/).filter(Boolean); } else { body.cron = when; }
        api("PUT", "/prestarts/" + enc(body.name), body).then(function (j) {
          toast("Saved " + j.name + (j.next_start ? "; next start " + new Date(j.next_start).toLocaleString() : ""));
          setTimeout(function () { location.reload(); }, 700);
        }).catch(function (e) { toast(e.message, true); });
      });
    }
    document.querySelectorAll(".delete-prestart").forEach(function (b) {
      b.addEventListener("click", function () {
        var n = b.dataset.prestart;
        confirmThen("Delete schedule " + n + "?", "Servers it already started keep running.", "Delete",
          function () { api("DELETE", "/prestarts/" + enc(n)).then(function () { location.reload(); }).catch(function (e) { toast(e.message, true); }); });
      });
    });
    var gsel = document.getElementById("group-servers-group"), gres = document.getElementById("prestart-result");
    on("group-start-all", function () {
      var g = gsel.value;
      api("POST", "/groups/" + enc(g) + "/servers").then(function () {
        gres.textContent = "Starting every server of " + g + " in the background; the outcome appears under Recent events."; gres.hidden = false;
      }).catch(function (e) { toast(e.message, true); });
    });
    on("group-stop-all", function () {
      var g = gsel.value;
      confirmThen("Stop every server of " + g + "?", "Running kernels end and unsaved work in open notebooks is lost. The files stay.", "Stop all",
        function () {
          api("DELETE", "/groups/" + enc(g) + "/servers").then(function (j) {
            gres.textContent = "Stopped " + j.stopped.length + " servers of " + g + (Object.keys(j.failed).length ? "; failed: " + Object.keys(j.failed).join(", ") : "") + ".";
            gres.hidden = false; setTimeout(function () { location.reload(); }, 900);
          }).catch(function (e) { toast(e.message, true); });
        });
    });
  }

  // nbgitpuller link builder
  var copy = document.getElementById("copy-link");
  if (copy) {
    copy.addEventListener("click", function () {
      var link = copy.dataset.link, field = document.getElementById("gitpuller-link");
      var done = function () { copy.textContent = "Copied ✓"; toast("Link copied to the clipboard"); setTimeout(function () { copy.textContent = "Copy"; }, 2000); };
      var fallback = function () { field.select(); try { document.execCommand("copy"); done(); } catch (e) { toast("Select the link and copy it by hand.", true); } };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(link).then(done, fallback); } else { fallback(); }
    });
    var lf = document.getElementById("gitpuller-link");
    if (lf) { lf.addEventListener("focus", function () { lf.select(); }); }
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
