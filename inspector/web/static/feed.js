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
      `<td>${r.has_thumb ? `<a href="${link}"><img class="thumb" src="${link}/thumb.jpg" alt="frame ${r.id}"></a>` :
             r.has_frame ? `<a href="${link}"><img class="thumb" src="${link}/frame.jpg?w=160" alt="frame ${r.id}"></a>` : ""}</td>` +
      `<td>${esc(r.camera_id)}</td><td>${r.seq}</td><td>${esc(r.captured_at.slice(11, 19))}</td>` +
      `<td>${esc(r.explanation)}</td>`;
    return tr;
  }
  const table = document.getElementById("feed");
  const setText = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = v; };
  function status(s) {
    for (const k of ["total", "pass", "fail", "review"]) setText("c-" + k, s.counts[k]);
    const b = (s.reasoner && s.reasoner.breaker) || {state: "closed"}, vb = document.getElementById("vlm-banner");
    vb.hidden = b.state === "closed";
    if (!vb.hidden) vb.textContent = `VLM unavailable: parts that need it go to review. Last error: ${b.last_error}. ` +
      `${s.vlm_backlog} crop(s) kept to ask again when it is back.`;
    const d = s.store || {}, db = document.getElementById("disk-banner");
    db.hidden = !d.images_paused;
    if (!db.hidden) db.textContent = `Pictures are not being saved: ${d.images_paused_reason}. Verdicts are still ` +
      `recorded; ${d.images_skipped} picture(s) skipped so far. Free disk space or raise the budget.`;
  }
  // Server-sent events: the browser keeps the stream open and reconnects by itself, resuming
  // after the last verdict it saw. A page of older rows (or one ending at a time) stays still.
  if (table.dataset.live === "yes") {
    const q = table.dataset.filter;
    const es = new EventSource(`/api/events?after_id=${newest}${q ? "&" + q : ""}`);
    es.addEventListener("verdict", (ev) => {
      const r = JSON.parse(ev.data);
      if (r.id <= newest) return;
      body.insertBefore(row(r), body.firstChild);
      newest = r.id;
      while (body.rows.length > 200) body.deleteRow(-1);
      const e = document.getElementById("empty"); if (e) e.remove();
    });
    es.addEventListener("status", (ev) => status(JSON.parse(ev.data)));
  }
})();
