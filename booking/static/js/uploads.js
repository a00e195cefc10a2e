// The documents step: each chosen file goes up into the saved request at once, on its own,
// with a progress bar, a cancel button while it goes and a retry button if it fails; the
// server's content check says whether it was accepted. Progressive enhancement only: without
// this script the files go up with the "Add these files" button and are kept the same way.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) {
    return;
  }
  var input = form.querySelector('input[type="file"]');
  var area = document.getElementById("upload-progress");
  var token = form.querySelector('input[name="csrf_token"]');
  // That the page was shown while the request was: without it, once the request is hidden
  // after a while without use, the server adds nothing (views._idle_hidden).
  var proof = form.querySelector('input[name="draft_page"]');
  var description = form.querySelector('input[name="description"]');
  // "No documents added yet.": untrue once a file is in, though the list shows it only when
  // the page reloads (not over a refused file's reason, below).
  var none = document.getElementById("no-documents");
  if (!input || !area || !token) {
    return;
  }
  var text = form.dataset;
  var pending = 0;
  var added = 0;
  var held = 0; // of those added, kept for a later virus scan ("Received - being checked")
  var failed = 0;
  var note = null;
  var noteText = null;

  // Hidden: each file is described in the list once it is in. Not when it holds text (the
  // browser restored it, or the page came back with its message): shown, it goes with the
  // next file.
  form.querySelectorAll(".js-hide").forEach(function (element) {
    if (!(description && element.contains(description) && description.value)) {
      element.hidden = true;
    }
  });

  function button(label, css) {
    var element = document.createElement("button");
    element.type = "button";
    element.className = "btn btn-sm ms-2 " + css;
    element.textContent = label;
    return element;
  }

  // A file over the size limit is refused here, at once: sent, it would go up in full (minutes
  // on a slow line) only for the server to refuse it. No "Try again": the same file would be
  // refused again.
  function refuse(file, row) {
    var name = document.createElement("strong");
    name.textContent = file.name;
    var status = document.createElement("span");
    status.className = "ms-2 upload-status text-danger";
    status.textContent = text.tooLarge;
    row.append(name, status);
    failed += 1; // so the page does not reload over the reason when the others are done
  }

  function send(file, row) {
    row.textContent = "";
    var name = document.createElement("strong");
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.className = "ms-2 align-middle";
    bar.setAttribute("aria-label", text.uploading + " " + file.name);
    var status = document.createElement("span");
    status.className = "ms-2 upload-status";
    status.textContent = text.uploading;
    var cancel = button(text.cancel, "btn-outline-secondary");
    row.append(name, bar, status, cancel);

    var data = new FormData();
    data.append("csrf_token", token.value);
    if (proof) {
      data.append("draft_page", proof.value);
    }
    data.append("files", file, file.name);
    if (description && description.value) {
      data.append("description", description.value);
    }
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    pending += 1;

    // ``retry``: false when the server says the same file would be refused again (what it
    // is, the request full or sent), as for a file too large: no "Try again" then. A
    // description refused is not such a refusal: corrected in its box, it goes with the file.
    function finish(ok, message, waiting, retry) {
      pending -= 1;
      cancel.remove();
      bar.remove();
      status.textContent = message;
      status.className = "ms-2 upload-status " + (ok ? "text-success" : "text-danger");
      if (ok) {
        added += 1;
        if (none) {
          none.hidden = true;
        }
        if (waiting) {
          held += 1;
        }
      } else {
        failed += 1;
        if (retry !== false) {
          var again = button(text.retry, "btn-outline-primary");
          again.addEventListener("click", function () {
            failed -= 1;
            send(file, row);
          });
          row.append(again);
        }
      }
      if (description && ok) {
        description.value = ""; // sent with this file: not with the next one too
      }
      if (pending > 0 || added === 0) {
        return;
      }
      // The list of added documents (with their remove buttons) is the server's page.
      if (failed === 0 && !typing()) {
        status.textContent = message + " " + text.refreshing;
        showList();
        return;
      }
      // A file was refused: reloading now would hide why. Its reason stays on its row;
      // the accepted ones are saved, and the patient shows the list when they choose. Nor
      // while they type what a listed file is: the page would change under their fingers.
      // The summary names the mark of a file held for its virus scan too, once one is: it
      // is kept, though not "Accepted". Said afresh after each file (one tried again).
      if (!note) {
        note = document.createElement("p");
        note.className = "mt-2";
        noteText = document.createElement("span");
        var show = button(text.show, "btn-outline-primary");
        show.classList.remove("ms-2");
        show.addEventListener("click", showList);
        note.append(noteText, show);
        area.append(note);
      }
      noteText.textContent = failed > 0 ? (held > 0 ? text.keptHeld : text.kept) + " " : "";
    }

    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        var percent = Math.round((event.loaded / event.total) * 100);
        bar.value = percent;
        status.textContent = text.uploading + " " + percent + "%";
      }
    });
    request.addEventListener("load", function () {
      var answer = null;
      try {
        answer = JSON.parse(request.responseText);
      } catch (error) {
        answer = null;
      }
      // The page had expired: the answer brings a fresh token for "Try again".
      if (answer && answer.token) {
        token.value = answer.token;
      }
      if (request.status === 200 && answer && answer.ok) {
        // A file held for a later virus scan is said to be received, not accepted.
        finish(true, answer.message || text.accepted, Boolean(answer.held));
      } else if (request.status === 413 && !(answer && answer.message)) {
        finish(false, text.tooLarge); // a proxy's own refusal, not the application's
      } else {
        finish(false, (answer && answer.message) || text.failed, false, answer && answer.retry);
      }
    });
    request.addEventListener("error", function () {
      finish(false, text.failed);
    });
    request.addEventListener("abort", function () {
      finish(false, text.cancelled);
    });
    cancel.addEventListener("click", function () {
      request.abort();
    });
    request.send(data);
  }

  // Whether the patient is typing in one of the page's text boxes (what a file is).
  function typing() {
    var active = document.activeElement;
    return Boolean(active && active.form === form && active.type === "text");
  }

  // The list, shown again by sending the form (no file chosen): what was typed next to the
  // files already listed is saved on the way, where a reload would drop it.
  function showList() {
    var upload = form.querySelector('button[name="nav"][value="upload"]');
    if (upload && form.requestSubmit) {
      form.requestSubmit(upload);
    } else {
      window.location.assign(form.action);
    }
  }

  input.addEventListener("change", function () {
    Array.prototype.forEach.call(input.files, function (file) {
      var row = document.createElement("div");
      row.className = "mb-2 upload-row";
      area.append(row);
      if (file.size > Number(text.maxBytes)) {
        refuse(file, row);
      } else {
        send(file, row);
      }
    });
    input.value = "";
  });

  form.addEventListener("submit", function (event) {
    if (pending > 0) {
      event.preventDefault();
      area.setAttribute("role", "alert");
      var wait = document.createElement("p");
      wait.className = "text-danger";
      wait.textContent = text.wait;
      area.append(wait);
    }
  });
})();
