// The time picker: a change of appointment type, specialist or place shows the matching times
// at once, without leaving the page: the focus stays on the control just changed, and a status
// message tells screen-reader users that the times below changed. Progressive enhancement
// only: without this script the "Show the times" button loads the same page.
(function () {
  "use strict";
  var filters = document.getElementById("picker-filters");
  var times = document.getElementById("picker-times");
  var status = document.getElementById("picker-status");
  if (!filters || !times || !window.fetch || !window.DOMParser) {
    return;
  }
  filters.querySelectorAll(".js-hide").forEach(function (element) {
    element.hidden = true;
  });
  var latest = 0;

  filters.addEventListener("change", function () {
    var query = new URLSearchParams(new FormData(filters)).toString();
    var url = filters.action.split("?")[0] + "?" + query;
    var asked = ++latest;
    times.setAttribute("aria-busy", "true");
    fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.text();
      })
      .then(function (html) {
        if (asked !== latest) {
          return; // a later change is on its way
        }
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("picker-times");
        if (!fresh) {
          window.location.assign(url);
          return;
        }
        times.replaceChildren.apply(times, Array.prototype.slice.call(fresh.childNodes));
        // A visit from home (video, phone) has no place to choose: the filter follows the type.
        var place = document.getElementById("picker-place");
        var freshPlace = page.getElementById("picker-place");
        if (place && freshPlace) {
          place.hidden = freshPlace.hidden;
        }
        times.removeAttribute("aria-busy");
        window.history.replaceState(null, "", url);
        status.textContent = times.getAttribute("data-updated");
      })
      .catch(function () {
        window.location.assign(url); // the page itself, as without the script
      });
  });
})();
