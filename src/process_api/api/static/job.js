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
  // the lines the page starts with: the last ones printed so far.
  var TAIL = 500;
  var lastLine = 0;
  var active = ended.indexOf(table.dataset.status) < 0;

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

  function appendLine(line, number) {
    var log = document.getElementById("log");
    if (lastLine === 0 && number > 1) {
      var skipped = document.getElementById("log-skipped");
      skipped.hidden = false;
      skipped.querySelector("span").textContent = String(number - 1);
    }
    lastLine = number;
    var row = document.createElement("span");
    if (line.stream === "stderr") { row.className = "stderr"; }
    row.textContent = line.text + "\n";
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(row);
    while (log.childNodes.length > MAX_LINES) { log.removeChild(log.firstChild); }
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  function statusChanged(info) {
    showStatus(info);
    if (active && ended.indexOf(info.status) >= 0) {
      active = false;
      // the page as it is now: results, final message, no dismiss button; unless the
      // person has gone elsewhere meanwhile (a reload would take them back here)
      var reload = window.setTimeout(function () { window.location.reload(); }, 500);
      window.addEventListener("beforeunload", function () { window.clearTimeout(reload); });
    }
  }

  // Polling, for when no stream may be opened (the server's MAX_STREAMS reached, say).
  function poll() {
    var json = {headers: {"Accept": "application/json"}, credentials: "same-origin"};
    var logs = table.dataset.logsUrl + "?limit=1000&after=" + lastLine;
    Promise.all([
      fetch(statusUrl, json).then(function (r) { return r.ok ? r.json() : null; }),
      fetch(logs, json).then(function (r) { return r.ok ? r.json() : null; })
    ]).then(function (found) {
      if (found[1]) {
        var first = lastLine + 1;
        found[1].logs.forEach(function (line, index) { appendLine(line, first + index); });
      }
      if (found[0]) { statusChanged(found[0]); }
      if (active || (found[1] && found[1].logs.length)) { window.setTimeout(poll, 2000); }
    }).catch(function () { window.setTimeout(poll, 5000); });
  }

  // One stream for the whole page: log lines, and the job's status as it changes.
  function follow() {
    var address = table.dataset.logsUrl + "?tail=" + TAIL + "&withStatus=true";
    var stream = new EventSource(address);
    var done = false;
    stream.addEventListener("log", function (message) {
      appendLine(JSON.parse(message.data), Number(message.lastEventId));
    });
    stream.addEventListener("status", function (message) {
      statusChanged(JSON.parse(message.data));
    });
    stream.addEventListener("end", function () { done = true; stream.close(); });
    stream.addEventListener("error", function () {
      if (!done && stream.readyState === EventSource.CLOSED) {
        document.getElementById("log-note").dataset.polling = "true";
        poll();
      }
    });
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
  follow();
  if (active) {
    dismissButton();
    window.setInterval(showDuration, 1000);
  }
})();
