// Every page: one server-sent event stream (/api/events) keeps the header's camera badges, the
// alert banners and any verdict counters live. Pages that want verdicts too (feed, live) name a
// stream with them in <body data-events> and listen on window.inspectorEvents.
// The plant's clock: stored times are UTC; pages show them in the zone named in <body data-tz>.
window.plantTime = (function () {
  let fmt = null;
  try {
    fmt = new Intl.DateTimeFormat("en-GB", {timeZone: document.body.dataset.tz || "UTC", hour: "2-digit",
                                            minute: "2-digit", second: "2-digit", hourCycle: "h23"});
  } catch (e) { /* a zone this browser does not know: show UTC, as stored */ }
  return iso => {
    const utc = /[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z";
    const t = new Date(utc);
    return fmt && !isNaN(t) ? fmt.format(t) : String(iso).slice(11, 19);
  };
})();
(function () {
  const setText = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = v; };
  function camState(c) { return c.connection && c.state === "running" ? c.connection : c.state; }
  function badge(c) {
    let t = c.product ? `${c.id} [${c.product}]: ${camState(c)}` : `${c.id}: ${camState(c)}`;
    if (c.reconnects) t += ` (${c.reconnects} reconnects)`;
    t += ` · ${c.frames_in} frames`;
    if (c.fps) t += ` · ${c.fps.toFixed(1)} fps`;
    if (c.dropped) t += ` · ${c.dropped} dropped`;
    if (c.latency_p95_ms) t += ` · p95 ${Math.round(c.latency_p95_ms)} ms`;
    return t;
  }
  function status(s) {
    for (const c of s.cameras || []) {
      const e = document.querySelector(`.cam[data-cam="${CSS.escape(c.id)}"]`);
      if (!e) continue;
      e.textContent = badge(c);
      e.className = "cam cam-" + camState(c);
      e.title = c.source + (c.error ? " - " + c.error : "") + (c.last_error ? " - last error: " + c.last_error : "");
    }
    if (s.counts) for (const k of ["total", "pass", "fail", "review"]) setText("c-" + k, s.counts[k]);
    const line = s.line || {up: true}, lb = document.getElementById("line-banner");
    lb.hidden = line.up;
    if (!lb.hidden) lb.textContent = `The line is not running (${line.error}). Nothing is being inspected; ` +
      "the verdicts shown are history.";
    const b = (s.reasoner && s.reasoner.breaker) || {state: "closed"}, vb = document.getElementById("vlm-banner");
    vb.hidden = b.state === "closed";
    if (!vb.hidden) vb.textContent = `VLM unavailable: parts that need it go to review. Last error: ${b.last_error || ""}. ` +
      `${s.vlm_backlog} crop(s) kept to ask again when it is back.`;
    const d = s.store || {}, db = document.getElementById("disk-banner");
    db.hidden = !d.images_paused;
    if (!db.hidden) db.textContent = `Pictures are not being saved: ${d.images_paused_reason}. Verdicts are still ` +
      `recorded; ${d.images_skipped} picture(s) skipped so far. Free disk space or raise the budget.`;
    document.dispatchEvent(new CustomEvent("inspector-status", {detail: s}));
  }
  const url = document.body.dataset.events;
  if (!url || !window.EventSource) return;
  const es = new EventSource(url);  // reconnects by itself, resuming after the last verdict id
  es.addEventListener("status", (ev) => status(JSON.parse(ev.data)));
  window.inspectorEvents = es;
})();
