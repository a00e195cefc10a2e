// Staff pages: a warning a few minutes before the idle sign-out (STAFF_IDLE_MINUTES), with
// "Stay signed in", so a long note or message being typed (which sends nothing to the server)
// is not lost with the session (WCAG 2.2.1, timing adjustable). Without this script the
// session ends as before; the box stays hidden.
//
// Each page load (any staff tab) and each "Stay signed in" is activity the server saw: it is
// shared between the tabs through localStorage, so a tab left open while another is used
// does not warn, nor say the session ended, while it has not.
(function () {
  "use strict";
  var box = document.getElementById("idle-warning");
  if (!box || !window.fetch || !window.FormData) {
    return;
  }
  var KEY = "spineconsult-staff-activity";
  var form = box.querySelector("form");
  var text = document.getElementById("idle-warning-text");
  var warning = text.textContent;
  var idle = Number(box.dataset.idleSeconds) * 1000;
  // The server counts from its last record of activity, written at most once a minute
  // (booking/staff/auth.py, SEEN_WRITE_INTERVAL): up to a minute before the activity seen here.
  var ends = idle - 60 * 1000;
  var lead = Math.min(2 * 60 * 1000, ends / 2);
  var timer = null;

  function stored() {
    try {
      return Number(window.localStorage.getItem(KEY)) || 0;
    } catch (error) {
      return 0; // storage refused (private mode): this tab counts on its own
    }
  }

  function note(moment) {
    try {
      window.localStorage.setItem(KEY, String(moment));
    } catch (error) {
      // as above
    }
  }

  var own = Date.now();
  note(own);

  function last() {
    return Math.max(own, stored());
  }

  function check() {
    clearTimeout(timer);
    var quiet = Date.now() - last();
    if (quiet >= idle) {
      text.textContent = box.dataset.signedOut;
      form.hidden = true;
      box.hidden = false;
      return;
    }
    text.textContent = warning;
    form.hidden = false;
    box.hidden = quiet < ends - lead;
    var next = box.hidden ? ends - lead - quiet : idle - quiet;
    timer = setTimeout(check, Math.max(next, 1000));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      redirect: "manual",
    })
      .then(function (response) {
        if (response.status === 204) {
          own = Date.now();
          note(own);
          check();
        } else {
          own = 0; // the session had ended: the server sent the sign-in page
          note(0);
          text.textContent = box.dataset.signedOut;
          form.hidden = true;
          box.hidden = false;
        }
      })
      .catch(function () {
        text.textContent = box.dataset.signedOut;
        form.hidden = true;
        box.hidden = false;
      });
  });
  // Another tab's page or "Stay signed in": look again at once.
  window.addEventListener("storage", function (event) {
    if (event.key === KEY) {
      check();
    }
  });
  check();
})();
