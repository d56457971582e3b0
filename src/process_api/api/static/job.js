// The job page, live: its status and progress from the job's event stream, its log as the
// process prints it, and a dismiss button. Without JavaScript the page shows the job as it
// was when loaded.
"use strict";
(function () {
  var table = document.getElementById("job");
  if (!table || !window.EventSource) { return; }
  var statusUrl = table.dataset.statusUrl;
  var ended = ["successful", "failed", "dismissed"];
  var MAX_LINES = 2000;

  function text(id, value) {
    var element = document.getElementById(id);
    if (element) { element.textContent = value == null ? "" : value; }
  }

  function showDuration() {
    var cell = document.getElementById("duration");
    if (!cell || !cell.dataset.started) { return; }
    var end = cell.dataset.finished ? Date.parse(cell.dataset.finished) : Date.now();
    var seconds = Math.max(0, Math.round((end - Date.parse(cell.dataset.started)) / 1000));
    var minutes = Math.floor(seconds / 60);
    cell.textContent = (minutes ? minutes + " min " : "") + (seconds % 60) + " s";
  }

  function showStatus(info) {
    var status = document.getElementById("status");
    status.textContent = info.status;
    status.className = "status " + info.status;
    text("message", info.message);
    var progress = document.getElementById("progress");
    if (info.progress != null) {
      progress.value = info.progress;
      text("progress-text", info.progress + " %");
    }
    ["created", "started", "finished", "updated"].forEach(function (name) {
      text(name, info[name]);
    });
    var duration = document.getElementById("duration");
    duration.dataset.started = info.started || "";
    duration.dataset.finished = info.finished || "";
    showDuration();
  }

  function follow() {
    var statuses = new EventSource(statusUrl);
    statuses.addEventListener("status", function (message) {
      var info = JSON.parse(message.data);
      showStatus(info);
      if (ended.indexOf(info.status) >= 0) {
        statuses.close();
        // the page as it is now: results, final message, no dismiss button
        window.setTimeout(function () { window.location.reload(); }, 500);
      }
    });
  }

  function followLog() {
    var log = document.getElementById("log");
    var lines = new EventSource(table.dataset.logsUrl);
    lines.addEventListener("log", function (message) {
      var line = JSON.parse(message.data);
      var row = document.createElement("span");
      if (line.stream === "stderr") { row.className = "stderr"; }
      row.textContent = line.text + "\n";
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(row);
      while (log.childNodes.length > MAX_LINES) { log.removeChild(log.firstChild); }
      if (atBottom) { log.scrollTop = log.scrollHeight; }
    });
    lines.addEventListener("end", function () { lines.close(); });
  }

  function dismissButton() {
    var button = document.getElementById("dismiss");
    if (!button) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      if (!window.confirm("Dismiss this job? Its run is stopped.")) { return; }
      var token = document.querySelector('meta[name="csrf-token"]');
      var headers = {"Accept": "application/json"};
      if (token) { headers["X-CSRF-Token"] = token.content; }
      button.disabled = true;
      fetch(statusUrl, {method: "DELETE", headers: headers, credentials: "same-origin"})
        .then(function (response) { return response.json(); })
        .then(function (body) {
          if (body.status) { showStatus(body); return; }
          text("message", body.detail);
          button.disabled = false;  // refused (already ended, signed out): it may be tried again
        })
        .catch(function () { button.disabled = false; });
    });
  }

  showDuration();
  followLog();
  if (ended.indexOf(table.dataset.status) < 0) {
    follow();
    dismissButton();
    window.setInterval(showDuration, 1000);
  }
})();
