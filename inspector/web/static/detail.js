// Click the frame to zoom to twice its width; click again to fit.
(function () {
  const f = document.getElementById("frame");
  if (f) f.addEventListener("click", () => f.classList.toggle("zoomed"));
})();
