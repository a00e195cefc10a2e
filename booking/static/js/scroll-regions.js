// A table wider than the screen scrolls sideways in its box (Bootstrap's .table-responsive):
// without a focusable box, a keyboard cannot reach the columns beyond the edge. Each box that
// does overflow becomes a named region in the tab order (its table's caption), as the
// agenda's boxes are on the server. Without this script the page still scrolls by mouse or touch.
(function () {
  "use strict";
  var boxes = document.querySelectorAll(".table-responsive");

  function update() {
    boxes.forEach(function (box) {
      if (box.scrollWidth > box.clientWidth) {
        var caption = box.querySelector("caption");
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        if (caption) {
          box.setAttribute("aria-label", caption.textContent.trim());
        }
      } else if (box.getAttribute("role") === "region") {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    });
  }

  if (boxes.length) {
    update();
    window.addEventListener("resize", update);
  }
})();
