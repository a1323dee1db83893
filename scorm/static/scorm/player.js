/* The SCORM runtime page on the content origin (scorm/player_views.py player_wrapper).
 *
 * Runs the full scorm-again API here, preloaded with the attempt's data, so the SCO
 * (in the frame below, same origin) finds window.API / window.API_1484_11 by the
 * standard discovery walk and its first reads answer "not attempted" and "" on a
 * fresh attempt, or its bookmark and suspend data on a resumed one. Commits go to the
 * app by cross-origin POST without credentials, as text/plain (no preflight), with
 * the signed per-attempt token in the body; the terminating commit, and the one made
 * when the page goes away without the SCO finishing, go by sendBeacon.
 */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("player-config").textContent);
  var is12 = config.version === "1.2";

  function wrap(commit, meta) {
    var flat = {};
    Object.keys(commit || {}).forEach(function (key) {
      if (key.indexOf("cmi.") === 0 || key.indexOf("adl.") === 0) {
        flat[key] = commit[key];
      }
    });
    return {
      token: config.token,
      session: config.session,
      sequence: meta && typeof meta.sequence === "number" ? meta.sequence : null,
      terminate: !!(meta && meta.isTerminateCommit),
      cmi: flat,
    };
  }

  function readResponse(xhr) {
    var body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (e) {
      body = null;
    }
    if (xhr.status === 200 && body && body.result === true) {
      return { result: "true", errorCode: 0 };
    }
    return { result: "false", errorCode: 391, errorMessage: body && body.error ? body.error : "commit failed" };
  }

  var settings = {
    autocommit: true,
    autocommitSeconds: config.autocommitSeconds,
    lmsCommitUrl: config.commitUrl,
    dataCommitFormat: "flattened",
    sendFullCommit: true,
    includeCommitSequence: true,
    commitRequestDataType: "text/plain;charset=UTF-8",
    terminationCommitContentType: "text/plain;charset=UTF-8",
    xhrWithCredentials: false,
    requestHandler: wrap,
    xhrResponseHandler: readResponse,
    logLevel: 4,
  };
  var api = is12 ? new window.Scorm12API(settings) : new window.Scorm2004API(settings);
  api.loadFromFlattenedJSON(config.cmi, "");
  if (is12) {
    window.API = api;
  } else {
    window.API_1484_11 = api;
  }

  function finish() {
    // The page is going away (the learner left the activity) while the SCO is still
    // running: end its session as a suspend would, so nothing set since the last
    // commit is lost. The terminating commit goes by sendBeacon.
    try {
      if (api.isInitialized() && !api.isTerminated()) {
        // Leaving without the SCO saying how it exits is leaving to come back.
        if (is12 && !api.cmi.core.exit) {
          api.cmi.core.exit = "suspend";
        } else if (!is12 && !api.cmi.exit) {
          api.cmi.exit = "suspend";
        }
        if (is12) {
          api.LMSFinish("");
        } else {
          api.Terminate("");
        }
      }
    } catch (e) {
      /* nothing more can be done while unloading */
    }
  }
  window.addEventListener("pagehide", finish);
  window.addEventListener("beforeunload", finish);

  document.getElementById("sco").src = config.scoUrl;
})();
