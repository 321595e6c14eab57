/* The interactive grid (selfie_tl.viz.grid_html). Reads the fragment's JSON data block and
   renders the detail panel (and the list of all interpretations) from it: each
   interpretation is in the page once. Hover or focus a cell to show it, click (or Enter)
   to pin it, click again or press Escape to unpin. All text goes in through textContent. */
(function () {
  var root = document.getElementById("__STL_VIEW_ID__");
  if (!root) return;
  var data = JSON.parse(root.querySelector("script.stl-data").textContent);
  var panel = root.querySelector(".stl-detail");
  var pinned = null;
  var KIND = {whitespace: "whitespace", special: "special token", repeat: "repetition"};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) { return v === null ? "n/a" : v.toFixed(3); }
  function shade(v, top) {
    if (v === null) return [data.missing, "#000"];
    var i = Math.min(255, Math.floor(Math.min(Math.max(v / top, 0), 1) * 256));
    return [data.palette[i], data.ink.charAt(i) === "1" ? "#fff" : "#000"];
  }
  function tokens(c) {
    if (!c.len) return null;
    var out = [], at = 0;
    for (var k = 0; k < c.len.length; k++) { out.push(c.text.slice(at, at + c.len[k])); at += c.len[k]; }
    return out;
  }
  function render(c) {
    var box = el("div", "stl-one");
    var head = el("div", "stl-head");
    var label = data.cols[c.t] ? " \"" + data.cols[c.t] + "\"" : "";
    var parts = ["layer " + c.l, "token " + c.t + label, "content relevancy " + fmt(c.score),
                 "mean relevancy " + fmt(c.mean)];
    if (c.kind === "empty") parts.push(data.marks.empty + " empty reply: nothing generated");
    if (c.kind === "blank") parts.push(data.marks.blank + " whitespace-only reply");
    if (c.n > 1) parts.push("first of " + c.n + " rows for this cell");
    head.textContent = parts.join(" · ");
    box.appendChild(head);
    var body = el("span", "stl-interp"), toks = tokens(c);
    if (toks === null) {
      body.textContent = c.text;
    } else {
      toks.forEach(function (tok, k) {
        var v = c.rel ? c.rel[k] : null, col = shade(v, data.tokenTop);
        var kind = c.skip ? ({w: "whitespace", s: "special", r: "repeat"})[c.skip.charAt(k)] : undefined;
        var span = el("span", "stl-tok" + (kind ? " stl-skip" : ""));
        span.style.backgroundColor = col[0];
        span.style.color = col[1];
        span.setAttribute("data-relevancy", v === null ? "" : String(v));
        span.title = "relevancy " + fmt(v) + (kind ? " · not in the score: " + KIND[kind] : "");
        var lines = tok.replace(/\r\n/g, "\n").split("\n");
        lines.forEach(function (line, j) {
          if (j > 0) span.appendChild(el("span", "stl-nl", "↵"));
          if (line) span.appendChild(document.createTextNode(line));
        });
        body.appendChild(span);
      });
    }
    box.appendChild(body);
    return box;
  }
  function show(td) {
    var box = render(data.cells[+td.getAttribute("data-i")]);
    if (td === pinned) box.insertBefore(el("span", "stl-state", "pinned · Esc or click to unpin"), box.firstChild);
    panel.replaceChildren(box);
  }
  function unpin() {
    if (!pinned) return;
    var was = pinned;
    pinned = null;
    was.classList.remove("stl-pinned");
    show(was);
  }
  function cellOf(e) { return e.target.closest ? e.target.closest("td.stl-cell") : null; }
  var table = root.querySelector("table.stl-grid");
  table.addEventListener("mouseover", function (e) { var td = cellOf(e); if (td && !pinned) show(td); });
  table.addEventListener("focusin", function (e) { var td = cellOf(e); if (td && !pinned) show(td); });
  table.addEventListener("click", function (e) {
    var td = cellOf(e);
    if (!td) return;
    if (pinned === td) { unpin(); return; }
    if (pinned) pinned.classList.remove("stl-pinned");
    pinned = td;
    td.classList.add("stl-pinned");
    show(td);
  });
  table.addEventListener("keydown", function (e) {
    var td = cellOf(e);
    if (td && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); td.click(); }
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") unpin(); });
  var list = root.querySelector("details.stl-list");
  function fill() {
    var ol = list.querySelector("ol");
    if (ol.childElementCount) return;
    data.cells.forEach(function (c) { var li = el("li"); li.appendChild(render(c)); ol.appendChild(li); });
  }
  if (list) { list.addEventListener("toggle", function () { if (list.open) fill(); }); if (list.open) fill(); }
})();
