"""The chat page at ``/``: one HTML file, its style sheet, its script and its icon, shipped in ``static/``.

The page needs no build step and loads nothing from elsewhere; it talks only to the server's documented routes
(``/v1/models``, ``/v1/chat/completions`` streamed, ``/v1/classify``). Its files hold no secrets, so they are
served without the API key; the page asks for the key and sends it with every API request, as any other client
does. Each file goes out with a Content-Security-Policy that allows this server only and no inline code, so a
reply that contains HTML or script can never run in the page (the script also inserts replies as text).
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# URL path -> (file in static/, media type)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/chat.css": ("chat.css", "text/css; charset=utf-8"),
    "/static/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PUBLIC_PATHS = frozenset(FILES)  # served without the API key


def read_static(filename: str) -> bytes:
    """A file of the page, from the installed package."""
    return resources.files(__package__).joinpath("static", filename).read_bytes()


def page_routes() -> list[Route]:
    """``GET`` routes for the page's files (read once, when the routes are made)."""
    routes = []
    for path, (filename, media_type) in FILES.items():
        body = read_static(filename)

        async def serve(request: Request, body: bytes = body, media_type: str = media_type) -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        routes.append(Route(path, serve, methods=["GET"]))
    return routes
