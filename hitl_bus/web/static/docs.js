// The API docs: Swagger UI on this server's OpenAPI document. A script file rather than an
// inline one, so the page keeps the site's Content-Security-Policy. "Try it out" sends the
// session's CSRF token with writes, as the UI's own scripts do.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  requestInterceptor: (request) => {
    if (csrf && request.method !== "GET") request.headers["X-CSRF-Token"] = csrf;
    return request;
  },
});
