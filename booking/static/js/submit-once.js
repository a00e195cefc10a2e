// A form marked data-submit-once is sent once: a double click, or Enter pressed twice, sent
// it twice before the next page came, and a note or message was stored twice (notes cannot
// be deleted). Later sends are ignored for a few seconds, or until the page is shown again
// (the Back button), in case the first never got an answer. Without this script the form is
// sent as often as it is submitted, as before.
(function () {
  "use strict";
  var WAIT_MS = 5000;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-submit-once") || event.defaultPrevented) {
      return;
    }
    if (form.dataset.sending) {
      event.preventDefault();
      return;
    }
    form.dataset.sending = "1";
    window.setTimeout(function () {
      delete form.dataset.sending;
    }, WAIT_MS);
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sending]").forEach(function (form) {
      delete form.dataset.sending;
    });
  });
})();
