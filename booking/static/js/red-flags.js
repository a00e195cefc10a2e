// The first step of a request: an emergency answer shows its advice the moment it is ticked.
// Progressive enhancement only: without this script the answers are sent, and the server
// answers an emergency with the same advice on its own page.
(function () {
  "use strict";
  var form = document.querySelector("form.red-flag-step");
  var advice = document.getElementById("emergency-advice");
  if (!form || !advice) {
    return;
  }
  var emergency = (form.getAttribute("data-emergency") || "").split(" ");

  function tickedYes(name) {
    var ticked = form.querySelector('input[name="' + name + '"]:checked');
    return ticked !== null && ticked.value === "yes" ? ticked : null;
  }

  // The questions this page's entry in the tab's history remembers as ticked "yes".
  function remembered() {
    var state = window.history.state;
    var names = state !== null && typeof state === "object" ? state.tickedYes : null;
    return Array.isArray(names) ? names : [];
  }

  // A "yes" ticked here and changed to "no" before sending is sent too (ticked_yes): the
  // server keeps it as a withdrawn answer, which makes the request urgent (triage.py).
  // It is also kept in the page's history entry (history.state), which a reload or Back
  // brings back; the inputs added here do not come back (and on a reload Chromium does not
  // tick the answers again). history.state goes with the tab, like the answers the browser
  // restores: nothing is written to the browser's storage.
  function remember(name) {
    if (emergency.indexOf(name) === -1) {
      return;
    }
    if (form.querySelector('input[name="ticked_yes"][value="' + name + '"]') === null) {
      var kept = document.createElement("input");
      kept.type = "hidden";
      kept.name = "ticked_yes";
      kept.value = name;
      form.appendChild(kept);
    }
    var names = remembered();
    if (names.indexOf(name) === -1) {
      var state = Object.assign({}, window.history.state, { tickedYes: names.concat([name]) });
      window.history.replaceState(state, "");
    }
  }

  // The advice shows while an emergency question is ticked "yes". ``near``: the answer just
  // ticked (or restored), after whose questions it shows, so the patient reads it at once;
  // role=alert has screen readers announce it.
  function showAdvice(near) {
    var show = emergency.some(tickedYes);
    if (show && advice.hidden && near !== null) {
      near.closest("fieldset").after(advice);
    }
    advice.hidden = !show;
  }

  form.addEventListener("change", function (event) {
    var input = event.target;
    if (emergency.indexOf(input.name) === -1) {
      return;
    }
    if (input.checked && input.value === "yes") {
      remember(input.name);
    }
    showAdvice(input);
  });

  // A reload or Back: the answers the browser ticked again fire no change, and the inputs
  // added before are gone. Read both again, now and when the page is shown (the browser
  // may restore the answers after this script runs, and a page kept in its back/forward
  // cache runs no script).
  function restore() {
    remembered().forEach(remember);
    var first = null;
    emergency.forEach(function (name) {
      var ticked = tickedYes(name);
      if (ticked !== null) {
        remember(name);
        first = first || ticked;
      }
    });
    showAdvice(first);
  }

  restore();
  window.addEventListener("pageshow", restore);
})();
