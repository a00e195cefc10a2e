// A form shown again with errors: the focus goes to the summary of what to correct, so a
// keyboard or screen-reader user starts there, and each of its links leads to a field (the
// GOV.UK Design System's error summary does the same). Without this script the summary is
// still announced (role="alert") and the page's title starts with "Error:".
(function () {
  "use strict";
  // A page's one problem (a time no longer free, a step that cannot be sent) is focused the
  // same way when there is no summary of fields, and so is the follow-up questionnaire's
  // warning that some answers cannot be counted yet (shown again with status 200, its
  // role="alert" is not announced on its own: it is on the page when it loads).
  var summary =
    document.getElementById("error-summary") ||
    document.getElementById("problem") ||
    document.getElementById("unscored");
  if (summary) {
    summary.focus();
    return;
  }
  // What an action just did ("Call logged."): a status already on the page when it loads is
  // not announced, and the page opens at the part acted on (#calls), away from the message.
  // The message moves there, after its heading, and takes the focus, so it is read and seen.
  var flash = document.getElementById("flash");
  if (!flash) {
    return;
  }
  var target = window.location.hash ? document.getElementById(window.location.hash.slice(1)) : null;
  if (target && !target.contains(flash)) {
    var heading = /^H[1-6]$/.test(target.tagName)
      ? target
      : target.querySelector("h1, h2, h3, h4, h5, h6");
    if (heading) {
      heading.after(flash);
    } else {
      target.prepend(flash);
    }
  }
  // Once the browser has gone to the #part, which takes the focus back to the page.
  window.addEventListener("load", function () {
    window.setTimeout(function () {
      flash.focus();
    }, 0);
  });
})();
