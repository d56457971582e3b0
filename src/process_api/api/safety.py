"""Headers that keep content a process made from acting as a page of the API's origin."""

from __future__ import annotations

import re

JSON = "application/json"
#: media types a browser shows passively (never runs a script from), served inline.
#: Everything else (HTML, XHTML, SVG, XML, JavaScript, PDF, multipart, unknown types)
#: is served as a download, so that an output that echoes its input cannot run an
#: attacker's script on the API's own origin.
INLINE_TYPES = frozenset(
    {
        JSON,
        "text/plain",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
    }
)


def shown_inline(media_type: str) -> bool:
    """Whether a browser may show the type in a page of the API's origin (see INLINE_TYPES)."""
    essence = media_type.split(";")[0].strip().lower()
    return essence in INLINE_TYPES or (
        essence.startswith("application/") and essence.endswith("+json")
    )


def raw_headers(media_type: str, name: str) -> dict[str, str]:
    """Headers that keep a raw output from acting as a page: sandboxed, and a download
    unless its type is one a browser only shows."""
    headers = {"Content-Security-Policy": "sandbox"}
    if not shown_inline(media_type):
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "output"
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return headers
