// Starts Swagger UI on /docs (a file, not an inline script: the pages' CSP allows none).
"use strict";
(function () {
  const el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: el.dataset.spec, dom_id: "#swagger-ui", deepLinking: true, showExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
})();
