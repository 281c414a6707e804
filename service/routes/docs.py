"""GET /docs: the interactive API reference (Swagger UI over /openapi.json), served by the service itself.

Swagger UI comes from the PyPI package openapi-ui-bundles (a dependency, so the wheel and the image carry
it): no CDN, nothing fetched from outside at run time, and the page's Content-Security-Policy forbids
it. "Try it out" calls this same service; paste a service token under "Authorize".
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from openapi_ui_bundles.swagger_ui import static_path

from ..problems import not_found
from ..routing import PUBLIC, RouteTable

routes = RouteTable("operations")

# Relative URLs: the page works under any prefix a proxy mounts the service at.
PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Astrowellness data service API</title>
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""

INIT = b"""window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  persistAuthorization: false,
  displayRequestDuration: true,
  tryItOutEnabled: false
});
"""

# Scripts, styles and calls only from this origin; Swagger UI draws some icons as data: URLs and
# sets inline styles.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

ASSETS: dict[str, tuple[Path | bytes, str]] = {
    "swagger-ui-bundle.js": (Path(static_path) / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (Path(static_path) / "swagger-ui.css", "text/css"),
    "favicon-32x32.png": (Path(static_path) / "favicon-32x32.png", "image/png"),
    "init.js": (INIT, "text/javascript"),
}
_loaded: dict[str, bytes] = {}


@routes.add("GET", "/docs", scope=PUBLIC, summary="Interactive API reference (Swagger UI, HTML)")
async def docs_page(request):
    return web.Response(body=PAGE, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@routes.add("GET", "/docs/{asset}", scope=PUBLIC, summary="A file of the API reference page", errors=(404,))
async def docs_asset(request):
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise not_found("file")
    source, content_type = ASSETS[name]
    body = _loaded.get(name)
    if body is None:  # read once, on first use: most processes never serve the page
        body = _loaded[name] = source if isinstance(source, bytes) else source.read_bytes()
    return web.Response(body=body, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
