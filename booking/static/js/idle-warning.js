// Staff pages: a warning a few minutes before the idle sign-out (STAFF_IDLE_MINUTES), with
// "Stay signed in", so a long note or message being typed (which sends nothing to the server)
// is not lost with the session (WCAG 2.2.1, timing adjustable). Without this script the
// session ends as before; the box stays hidden.
(function () {
  "use strict";
  var box = document.getElementById("idle-warning");
  if (!box || !window.fetch || !window.FormData) {
    return;
  }
  var form = box.querySelector("form");
  var text = document.getElementById("idle-warning-text");
  var idle = Number(box.dataset.idleSeconds) * 1000;
  // The server counts from its last record of activity, written at most once a minute
  // (booking/staff/auth.py, SEEN_WRITE_INTERVAL): up to a minute before this page loaded.
  var ends = idle - 60 * 1000;
  var lead = Math.min(2 * 60 * 1000, ends / 2);
  var warnTimer = null;
  var endTimer = null;

  function signedOut() {
    clearTimeout(warnTimer);
    clearTimeout(endTimer);
    text.textContent = box.dataset.signedOut;
    form.hidden = true;
    box.hidden = false;
  }

  function arm() {
    clearTimeout(warnTimer);
    clearTimeout(endTimer);
    box.hidden = true;
    warnTimer = setTimeout(function () {
      box.hidden = false;
    }, ends - lead);
    endTimer = setTimeout(signedOut, idle);
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
          arm();
        } else {
          signedOut(); // the session had ended: the server sent the sign-in page
        }
      })
      .catch(signedOut);
  });
  arm();
})();
