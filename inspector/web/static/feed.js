// Live feed: new verdicts arrive over server-sent events (/api/events) and go on top.
(function () {
  const body = document.getElementById("feed-body");
  let newest = Math.max(0, ...Array.from(body.rows).map(r => +r.dataset.id));
  const esc = s => String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  function row(r) {
    const tr = document.createElement("tr");
    tr.className = "row fresh v-" + r.verdict;
    tr.dataset.id = r.id;
    const link = "/inspections/" + r.id;
    tr.innerHTML =
      `<td><a href="${link}">${r.id}</a></td>` +
      `<td><a class="pill p-${esc(r.verdict)}" href="${link}">${esc(r.verdict.toUpperCase())}</a></td>` +
      `<td class="line-d">${r.line ? `<b class="ld-${esc(r.line)}">${esc(r.line.toUpperCase())}</b>` +
        (r.line_basis !== "verdict" ? ` <span class="tag">${esc(r.line_basis)}</span>` : "") : ""}</td>` +
      `<td>${r.has_thumb ? `<a href="${link}"><img class="thumb" src="${link}/thumb.jpg" alt="frame ${r.id}"></a>` :
             r.has_frame ? `<a href="${link}"><img class="thumb" src="${link}/frame.jpg?w=160" alt="frame ${r.id}"></a>` : ""}</td>` +
      `<td>${esc(r.camera_id)}</td><td>${r.part_id ? `<a href="/?part_id=${encodeURIComponent(r.part_id)}">${esc(r.part_id)}</a>` +
        (r.reinspection ? ' <span class="tag">re-inspection</span>' : "") : r.seq}</td><td>${esc(window.plantTime(r.captured_at))}</td>` +
      `<td>${esc(r.explanation)}</td>`;
    return tr;
  }
  // The stream (opened by status.js from <body data-events>) carries this page's filters, so
  // every verdict that arrives belongs on top. A page of older rows has no verdicts in it.
  const es = window.inspectorEvents;
  if (es && document.getElementById("feed").dataset.live === "yes") {
    es.addEventListener("verdict", (ev) => {
      const r = JSON.parse(ev.data);
      if (r.id <= newest) return;
      body.insertBefore(row(r), body.firstChild);
      newest = r.id;
      while (body.rows.length > 200) body.deleteRow(-1);
      const e = document.getElementById("empty"); if (e) e.remove();
    });
  }
})();
