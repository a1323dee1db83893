// Keeps a live run's page current without reloading it (a timed reload moves a
// screen reader back to the top): the progress JSON fills in the status, step and
// progress, and a finished run offers its full report as a link.
(function () {
  "use strict";
  var root = document.getElementById("run-live");
  if (!root || !window.fetch) {
    return;
  }
  var url = root.getAttribute("data-progress-url");
  var status = document.getElementById("status");
  var phase = document.getElementById("phase");
  var text = document.getElementById("progress-text");
  var bar = document.getElementById("progress-bar");
  var errors = document.getElementById("error-count");
  var done = document.getElementById("run-finished");
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) {
          return;
        }
        status.textContent = data.status_label;
        phase.textContent = data.phase_label;
        text.textContent = data.progress_text;
        errors.textContent = data.error_count;
        if (bar) {
          if (data.percent === null || data.failed) {
            bar.removeAttribute("value");
          } else {
            bar.value = data.percent;
          }
          bar.hidden = data.failed;
        }
        if (data.live) {
          window.setTimeout(tick, 3000);
        } else if (done) {
          done.hidden = false;
        }
      })
      .catch(function () { window.setTimeout(tick, 10000); });
  }
  window.setTimeout(tick, 3000);
})();
