// A form shown again with errors: the focus goes to the summary of what to correct, so a
// keyboard or screen-reader user starts there, and each of its links leads to a field (the
// GOV.UK Design System's error summary does the same). Without this script the summary is
// still announced (role="alert") and the page's title starts with "Error:".
(function () {
  "use strict";
  // A page's one problem (a time no longer free, a step that cannot be sent) is focused the
  // same way when there is no summary of fields.
  var summary =
    document.getElementById("error-summary") || document.getElementById("problem");
  if (summary) {
    summary.focus();
  }
})();
