// The job list, live: the rows of jobs still accepted or running are read again every few
// seconds (one request for the page, as JSON) until none is.
"use strict";
(function () {
  var table = document.getElementById("jobs");
  if (!table) { return; }
  var EVERY = 3000;
  var active = ["accepted", "running"];

  function activeRows() {
    return Array.prototype.filter.call(table.querySelectorAll("tr[data-job]"), function (row) {
      return active.indexOf(row.querySelector("[data-field=status]").textContent) >= 0;
    });
  }

  function refresh() {
    if (!activeRows().length) { return; }
    var address = new URL(window.location.href);
    address.searchParams.set("f", "json");
    fetch(address, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (page) {
        (page ? page.jobs : []).forEach(function (job) {
          var row = table.querySelector('tr[data-job="' + job.jobID + '"]');
          if (!row) { return; }
          var status = row.querySelector("[data-field=status]");
          status.textContent = job.status;
          status.className = "status " + job.status;
          row.querySelector("[data-field=message]").textContent = job.message || "";
          row.querySelector("[data-field=progress]").textContent =
            job.progress == null ? "" : job.progress;
          row.querySelector("[data-field=finished]").textContent = job.finished || "";
        });
      })
      .catch(function () {})
      .then(function () { window.setTimeout(refresh, EVERY); });
  }

  window.setTimeout(refresh, EVERY);
})();
