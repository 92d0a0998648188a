// Click the frame to zoom to twice its width; click again to fit.
(function () {
  const f = document.getElementById("frame");
  if (f) f.addEventListener("click", () => f.classList.toggle("zoomed"));
})();

// Review shortcuts: p = pass, f = fail, r = needs review (not while typing in a field).
(function () {
  const form = document.querySelector("form.review");
  if (!form) return;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) return;
    const v = {p: "pass", f: "fail", r: "review"}[e.key];
    if (!v) return;
    const b = form.querySelector(`button[value="${v}"]`);
    if (b) { e.preventDefault(); form.requestSubmit(b); }
  });
})();
