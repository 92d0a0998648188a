// Live page: camera state, rate and drops from the status events; the tile's border and caption
// from the newest verdict of its camera. The pictures themselves are MJPEG streams.
(function () {
  const tile = id => document.querySelector(`figure.cam-live[data-cam="${CSS.escape(id)}"]`);
  document.addEventListener("inspector-status", (ev) => {
    for (const c of ev.detail.cameras || []) {
      const t = tile(c.id);
      if (!t) continue;
      const state = c.connection && c.state === "running" ? c.connection : c.state;
      const st = t.querySelector('[data-f="state"]');
      st.textContent = state;
      st.className = "state st-" + state;
      t.querySelector('[data-f="fps"]').textContent = c.fps ? c.fps.toFixed(1) : "-";
      t.querySelector('[data-f="frames_inspected"]').textContent = c.frames_inspected;
      t.querySelector('[data-f="dropped"]').textContent = c.dropped;
    }
  });
  const es = window.inspectorEvents;
  if (!es) return;
  es.addEventListener("verdict", (ev) => {
    const r = JSON.parse(ev.data), t = tile(r.camera_id);
    if (!t) return;
    t.className = "cam-live last-" + r.verdict;
    const last = t.querySelector('[data-f="last"]');
    last.innerHTML = "";
    const a = document.createElement("a");
    a.href = "/inspections/" + r.id;
    a.className = "pill p-" + r.verdict;
    a.textContent = r.verdict.toUpperCase();
    last.append(a, ` part ${r.seq} at ${window.plantTime(r.captured_at)}`);
  });
})();
