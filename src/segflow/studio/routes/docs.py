"""/docs: Swagger UI served from the studio itself (the swagger-ui-py package's copy of
swagger-ui-dist), so the API documentation works on a machine without internet access."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def _swagger_dist() -> Path | None:
    try:
        import swagger_ui
    except ImportError:
        return None
    d = Path(swagger_ui.__file__).resolve().parent / "static"
    return d if (d / "swagger-ui-bundle.js").is_file() else None


def mount(app: FastAPI) -> None:
    dist = _swagger_dist()
    if dist is not None:
        app.mount(ASSETS, StaticFiles(directory=dist), name="docs-assets")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def swagger_page():
        if dist is None:
            return HTMLResponse("<p>The API documentation needs the swagger-ui-py package: "
                                "<code>pip install swagger-ui-py</code>. The schema itself is at "
                                f"<a href='{app.openapi_url}'>{app.openapi_url}</a>.</p>",
                                status_code=503)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None})  # no call to validator.swagger.io
