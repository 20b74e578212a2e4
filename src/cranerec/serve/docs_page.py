"""``/docs`` without the network: Swagger UI served from the ``swagger-ui-bundle`` package's
files when it is installed, else a page rendered on the server from the OpenAPI schema (no
script); FastAPI's own pages load their scripts from a CDN."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def _swagger_assets() -> Path | None:
    """The folder of Swagger UI's files from the ``swagger-ui-bundle`` package, if installed."""
    try:
        import swagger_ui_bundle  # type: ignore[import-not-found]
    except ImportError:
        return None
    folder = Path(getattr(swagger_ui_bundle, "swagger_ui_path", ""))
    needed = ("swagger-ui-bundle.js", "swagger-ui.css")
    return folder if all((folder / name).is_file() for name in needed) else None


def add_docs(app: FastAPI) -> None:
    """``/docs`` without the network: Swagger UI from the ``swagger-ui-bundle`` package's files
    when it is installed, else a page rendered here from the schema (no script)."""
    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def swagger(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - docs",
                swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
                swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
                swagger_favicon_url="data:,",
                swagger_ui_parameters={"validatorUrl": None},  # no badge from swagger.io
            )

        return

    @app.get("/docs", include_in_schema=False)
    async def schema_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(_schema_html(app.openapi(), f"{root}{app.openapi_url}"))


def _schema_html(schema: dict[str, Any], openapi_url: str) -> str:
    """The OpenAPI schema as one self-contained page: endpoints, fields, answers, examples."""
    esc = html.escape
    components = schema.get("components", {}).get("schemas", {})

    def ref(s: dict[str, Any]) -> dict[str, Any]:
        return components.get(s["$ref"].rsplit("/", 1)[1], {}) if "$ref" in s else s

    def pre(value: Any) -> str:
        return f"<pre>{esc(json.dumps(value, indent=2))}</pre>"

    info = schema["info"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(info['title'])} - docs"
        "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}td,th{text-align:left;"
        "padding:.2em .6em;vertical-align:top}h2{border-top:1px solid #ccc;padding-top:.6em}"
        "</style></head><body>",
        f"<h1>{esc(info['title'])} {esc(info['version'])}</h1><p>{esc(info['description'])}</p>",
        f"<p>The schema: <a href='{esc(openapi_url)}'>{esc(openapi_url)}</a>. This page is "
        "rendered from it on the server, with nothing to fetch; for the interactive Swagger UI "
        "served from local files, install the <code>swagger-ui-bundle</code> package.</p>",
    ]
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            out.append(f"<h2>{esc(method.upper())} {esc(path)}</h2>")
            out.append(f"<p>{esc(op.get('description') or op.get('summary', ''))}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                model = ref(body["schema"])
                rows = "".join(
                    f"<tr><td><code>{esc(name)}</code></td><td>{esc(p.get('description', ''))}"
                    "</td></tr>"
                    for name, p in model.get("properties", {}).items()
                )
                required = ", ".join(model.get("required", [])) or "none"
                out.append(
                    f"<h3>Request body</h3><p>Required: {esc(required)}.</p><table>{rows}</table>"
                )
                for example in model.get("examples", []):
                    out.append(pre(example))
            out.append("<h3>Answers</h3><table>")
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {})
                example = pre(content["example"]) if "example" in content else ""
                out.append(
                    f"<tr><th>{esc(code)}</th><td>{esc(response.get('description', ''))}"
                    f"{example}</td></tr>"
                )
            out.append("</table>")
    out.append("</body></html>")
    return "".join(out)
