// The staff menu's group of admin pages (<details class="nav-group">, staff_base.html) opens
// and closes by its summary without scripts. Shown as a dropdown over the page, it also
// closes the way a menu does: on Escape, the focus back on its summary (else the focus would
// stay on a link no longer shown), and on a click anywhere outside it. Escape pressed
// elsewhere on the page (in a field) closes it without moving the focus.
(function () {
  "use strict";
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.nav-group"));
  if (!groups.length) {
    return;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Esc") {
      return;
    }
    groups.forEach(function (group) {
      if (!group.open) {
        return;
      }
      var inside = group.contains(document.activeElement);
      group.open = false;
      if (inside) {
        group.querySelector("summary").focus();
        event.preventDefault();
      }
    });
  });

  document.addEventListener("click", function (event) {
    groups.forEach(function (group) {
      if (group.open && !group.contains(event.target)) {
        group.open = false;
      }
    });
  });
})();
