"""The HTML board's inline stylesheet and script (no CDN, no network)."""

from __future__ import annotations

CSS = """
:root{--fg:#1d2330;--muted:#5d6675;--line:#d9dde4;--ref:#f6f1e1;--hover:#eef4ff;--accent:#2457c5;--bad:#b3261e}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0 auto;
max-width:1500px;padding:1.2rem 1.5rem 4rem}
h1{font-size:1.6rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line)}
h4{margin:1rem 0 .3rem;font-size:.95rem}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f3f5;padding:0 .25em;border-radius:3px}
.facts-top{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.8rem 0}
.facts-top dt{font-weight:600;color:var(--muted)}.facts-top dd{margin:0}
.note{color:var(--muted);font-size:.92rem}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table.board{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
table.board th,table.board td{padding:.35rem .55rem;border-bottom:1px solid var(--line);text-align:left;
white-space:nowrap}
table.board thead th{position:sticky;top:0;background:#fafbfc;vertical-align:bottom;padding:0}
table.board thead button.sort{all:unset;cursor:pointer;display:block;padding:.45rem .55rem;font-weight:600}
table.board thead button.sort:focus-visible{outline:2px solid var(--accent)}
table.board thead th[aria-sort=ascending] button.sort::after{content:" \\25B2";color:var(--accent);font-size:.75em}
table.board thead th[aria-sort=descending] button.sort::after{content:" \\25BC";color:var(--accent);font-size:.75em}
.dir-higher{color:#1a7f37}.dir-lower{color:#b35c00}.dir-none{color:var(--muted)}
td.num{text-align:right}.ci{color:var(--muted);font-size:.85em}
tbody.refs tr{background:var(--ref);font-style:italic}tbody.refs{border-bottom:2px solid #c9b97f}
.badge{font-style:normal;font-size:.7rem;background:#c9b97f;color:#fff;border-radius:3px;padding:0 .35em;
margin-left:.3em;vertical-align:middle}
tbody.runs tr[data-detail]{cursor:pointer}tbody.runs tr[data-detail]:hover,tbody.runs tr:focus{background:var(--hover)}
th.method{font-weight:600}a.detail-link{color:var(--accent);text-decoration:none}
.status.bad,.bad{color:var(--bad)}
figure.plot{margin:1rem 0;max-width:1100px}figure.plot img{max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:.9rem}.file{font-family:ui-monospace,monospace;font-size:.8rem}
details.method-detail{border:1px solid var(--line);border-radius:6px;margin:.4rem 0;padding:.3rem .8rem}
details.method-detail>summary{cursor:pointer;font-weight:600}details.method-detail .label{margin-right:.4em}
details.method-detail.flash{outline:3px solid var(--accent)}
table.kv{border-collapse:collapse;margin:.3rem 0}table.kv th,table.kv td{border:1px solid var(--line);
padding:.2rem .5rem;text-align:left;vertical-align:top}table.kv th{background:#fafbfc;font-weight:600}
dialog#detail-view{max-width:min(1000px,94vw);width:94vw;max-height:90vh;border:1px solid var(--line);
border-radius:8px;padding:0}dialog#detail-view::backdrop{background:rgba(20,25,35,.45)}
dialog#detail-view .head{display:flex;justify-content:space-between;align-items:center;position:sticky;top:0;
background:#fff;border-bottom:1px solid var(--line);padding:.6rem 1rem}
dialog#detail-view .head h3{margin:0;font-size:1.1rem}dialog#detail-view .content{padding:.4rem 1rem 1rem}
dialog#detail-view button.close{font-size:1rem;cursor:pointer}
"""

JS = """
(function () {
  "use strict";
  function sortKey(cell, kind) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent; }
    v = v.trim();
    if (v === "" || v === "\\u2014") { return null; }
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
"""
