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

  function anyEmergency() {
    return emergency.some(function (name) {
      var ticked = form.querySelector('input[name="' + name + '"]:checked');
      return ticked !== null && ticked.value === "yes";
    });
  }

  // A "yes" ticked here and changed to "no" before sending is sent too (ticked_yes): the
  // server keeps it as a withdrawn answer, which makes the request urgent (triage.py).
  function remember(name) {
    if (form.querySelector('input[name="ticked_yes"][value="' + name + '"]') !== null) {
      return;
    }
    var kept = document.createElement("input");
    kept.type = "hidden";
    kept.name = "ticked_yes";
    kept.value = name;
    form.appendChild(kept);
  }

  form.addEventListener("change", function (event) {
    var input = event.target;
    if (emergency.indexOf(input.name) === -1) {
      return;
    }
    if (input.checked && input.value === "yes") {
      remember(input.name);
    }
    var show = anyEmergency();
    if (show && advice.hidden) {
      // Shown just after the question answered, so the patient reads it at once; role=alert
      // has screen readers announce it.
      input.closest("fieldset").after(advice);
    }
    advice.hidden = !show;
  });
})();
