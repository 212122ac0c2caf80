// hookwire console: the live event stream (Server-Sent Events). Rows are built with textContent only, so event
// names and data, which devices control, are never parsed as markup.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("live-events");
  if (!table || !window.EventSource) { return; }
  var status = document.getElementById("live-status");
  var body = table.querySelector("tbody");
  var maxRows = 500;
  var source = new EventSource(table.getAttribute("data-stream"));
  source.onopen = function () { status.textContent = "following: new events appear at the top"; };
  source.onerror = function () { status.textContent = "disconnected; retrying…"; };
  source.onmessage = function (message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    var row = document.createElement("tr");
    row.className = "live-event";
    [event.published_at, event.name, event.data, event.device_id].forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > maxRows) { body.deleteRow(body.rows.length - 1); }
  };
});
