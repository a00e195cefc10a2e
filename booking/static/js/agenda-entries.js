// An agenda entry longer than its place on the grid shows the whole lines that place holds
// (.agenda-clamp, app.css) and opens whole on hover or focus. An entry with a link opens while
// the link has the focus; one without (time off and its reason, a free time, an appointment
// whose patient is not shown) is made a stop in the tab order while its text is cut, so a
// keyboard opens it too, and taken out again where it shows whole (a wider window, the list
// of days on a phone). Without scripts it opens on hover, and a screen reader reads it all.
(function () {
  "use strict";
  var clamps = Array.prototype.slice
    .call(document.querySelectorAll(".agenda-clamp"))
    .filter(function (clamp) {
      return !clamp.querySelector("a, button, input, select, textarea");
    });

  function update() {
    clamps.forEach(function (clamp) {
      var entry = clamp.parentNode;
      // Open now (its whole text shown): whether it is cut is known once it closes.
      if (entry.matches(":hover, :focus-within")) {
        return;
      }
      if (clamp.scrollHeight > clamp.clientHeight + 1) {
        entry.setAttribute("tabindex", "0");
      } else {
        entry.removeAttribute("tabindex");
      }
    });
  }

  if (clamps.length) {
    update();
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(update);
      clamps.forEach(function (clamp) {
        observer.observe(clamp.parentNode);
      });
    } else {
      window.addEventListener("resize", update);
    }
  }
})();
