(function () {
  "use strict";
  function sortKey(cell, kind) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent; }
    v = v.trim();
    if (v === "" || v === "\u2014") { return null; }
    if (kind === "num") { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return v;
  }
  function compare(a, b, kind) {
    if (kind === "num") { return a < b ? -1 : (a > b ? 1 : 0); }
    return a.localeCompare(b);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button.sort");
      if (!button) { return; }
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var kind = th.getAttribute("data-kind");
        Array.prototype.forEach.call(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        Array.prototype.forEach.call(table.querySelectorAll("tbody.runs"), function (body) {
          var rows = Array.prototype.slice.call(body.rows);
          var keyed = rows.map(function (row, i) { return [sortKey(row.cells[col], kind), i, row]; });
          keyed.sort(function (p, q) {
            if (p[0] === null && q[0] === null) { return p[1] - q[1]; }
            if (p[0] === null) { return 1; }
            if (q[0] === null) { return -1; }
            var c = compare(p[0], q[0], kind);
            return (ascending ? c : -c) || p[1] - q[1];
          });
          keyed.forEach(function (k) { body.appendChild(k[2]); });
        });
      });
    });
  });
  var dialog = document.getElementById("detail-view");
  function openDetail(id) {
    var panel = document.getElementById(id);
    if (!panel) { return false; }
    if (dialog && typeof dialog.showModal === "function") {
      dialog.querySelector(".head h3").innerHTML = panel.querySelector("summary").innerHTML;
      var content = dialog.querySelector(".content");
      content.innerHTML = "";
      content.appendChild(panel.querySelector(".detail-body").cloneNode(true));
      dialog.setAttribute("data-detail", id);
      if (!dialog.open) { dialog.showModal(); }
      dialog.scrollTop = 0;
    } else {
      panel.open = true;
      panel.scrollIntoView();
    }
    return true;
  }
  Array.prototype.forEach.call(document.querySelectorAll("tbody.runs tr[data-detail]"), function (row) {
    var id = row.getAttribute("data-detail");
    row.addEventListener("click", function (event) { if (openDetail(id)) { event.preventDefault(); } });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openDetail(id); }
    });
  });
  if (dialog) {
    dialog.querySelector("button.close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });
  }
})();
