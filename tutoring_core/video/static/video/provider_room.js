// The provider room page (issue 15): the recording banner and the room's state stay current
// while the meeting runs in its own window. Plain JS, no build step.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("video-config").textContent);
  const $ = (id) => document.getElementById(id);
  async function poll() {
    let body;
    try {
      const response = await fetch(config.statusUrl, { credentials: "same-origin" });
      body = await response.json();
    } catch (e) { return; }
    $("recording-banner").hidden = !body.recorded;
    if (!body.open) {
      $("room-problem").textContent = body.reason;
      $("room-problem").hidden = false;
      $("join").disabled = true;
    }
  }
  document.addEventListener("DOMContentLoaded", () => { setInterval(poll, 10000); });
})();
