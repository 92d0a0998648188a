// The review queue by keyboard: j/k move the selection, p/f/r decide the selected part, Enter opens it.
(function () {
  const rows = Array.from(document.querySelectorAll("#queue tbody tr"));
  if (!rows.length) return;
  let i = 0;
  const select = (n) => {
    rows[i].classList.remove("selected");
    i = Math.max(0, Math.min(rows.length - 1, n));
    rows[i].classList.add("selected");
    rows[i].scrollIntoView({block: "nearest"});
  };
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) return;
    if (e.key === "j") select(i + 1);
    else if (e.key === "k") select(i - 1);
    else if (e.key === "Enter") location.href = "/inspections/" + rows[i].dataset.id;
    else {
      const v = {p: "pass", f: "fail", r: "review"}[e.key];
      const b = v && rows[i].querySelector(`form.quick button[value="${v}"]`);
      if (b) { e.preventDefault(); b.form.requestSubmit(b); }
    }
  });
})();
