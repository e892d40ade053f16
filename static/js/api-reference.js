// The API reference page: Swagger UI replaces the plain list of operations.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") return;
    var url = root.getAttribute("data-spec-url");
    root.innerHTML = "";
    window.SwaggerUIBundle({ url: url, dom_id: "#swagger-ui", deepLinking: true, tryItOutEnabled: false });
  });
})();
