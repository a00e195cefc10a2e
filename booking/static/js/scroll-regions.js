// A table wider than the screen scrolls sideways in its box (Bootstrap's .table-responsive):
// without a focusable box, a keyboard cannot reach the columns beyond the edge. The server
// makes each box a named region in the tab order, so that holds without scripts too; here a
// box whose table fits is taken out of the tab order (a stop that scrolls nothing is noise),
// and put back, under the name the server gave it (else its table's caption), when a
// narrower window makes it overflow again. The agenda's box (.agenda-scroll) likewise: on a
// phone a week is a list of its days and scrolls nothing sideways; it stays a region named by
// its heading (aria-labelledby), only out of the tab order. So does a chart's box
// (.chart-scroll: the insights' chart over time, the record's follow-up charts), which
// scrolls only where the screen is narrower than the chart.
(function () {
  "use strict";
  var boxes = Array.prototype.slice.call(
    document.querySelectorAll(".table-responsive, .agenda-scroll, .chart-scroll")
  );
  var names = boxes.map(function (box) {
    var caption = box.querySelector("caption");
    return box.getAttribute("aria-label") || (caption ? caption.textContent.trim() : "");
  });

  function update() {
    boxes.forEach(function (box, i) {
      if (box.scrollWidth > box.clientWidth) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        if (names[i]) {
          box.setAttribute("aria-label", names[i]);
        }
      } else if (box.hasAttribute("tabindex")) {
        box.removeAttribute("tabindex");
        if (!box.hasAttribute("aria-labelledby")) {
          box.removeAttribute("role");
          box.removeAttribute("aria-label");
        }
      }
    });
  }

  if (boxes.length) {
    update();
    // A box changes size with the window, and also when it is first shown (a closed
    // section opened): watched where the browser can.
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(update);
      boxes.forEach(function (box) {
        observer.observe(box);
      });
    } else {
      window.addEventListener("resize", update);
    }
  }
})();
