// The job list, live: the rows of jobs still accepted or running are read again every few
// seconds (the first MAX_ROWS of them) until none is.
"use strict";
(function () {
  var table = document.getElementById("jobs");
  if (!table) { return; }
  var EVERY = 3000;
  var MAX_ROWS = 25;
  var active = ["accepted", "running"];

  function activeRows() {
    return Array.prototype.filter.call(table.querySelectorAll("tr[data-job]"), function (row) {
      return active.indexOf(row.querySelector("[data-field=status]").textContent) >= 0;
    });
  }

  function show(row, job) {
    var status = row.querySelector("[data-field=status]");
    status.textContent = job.status;
    status.className = "status " + job.status;
    row.querySelector("[data-field=message]").textContent = job.message || "";
    row.querySelector("[data-field=progress]").textContent = job.progress == null ? "" : job.progress;
    row.querySelector("[data-field=finished]").textContent = job.finished || "";
  }

  // Each active row asks for its job's status (it may have left the page's filter by now).
  function refresh() {
    var rows = activeRows().slice(0, MAX_ROWS);
    if (!rows.length) { return; }
    Promise.all(rows.map(function (row) {
      return fetch(row.dataset.status, {headers: {"Accept": "application/json"},
                                        credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) { if (job) { show(row, job); } })
        .catch(function () {});
    })).then(function () { window.setTimeout(refresh, EVERY); });
  }

  window.setTimeout(refresh, EVERY);
})();
