"""How each output of a job shows on its HTML pages (results and job): numbers and text as
they are, JSON as a tree that folds, files as links with their size, images inline and
GeoJSON on a small map. Everything is decided here, on the server, so that the pages read
the same with JavaScript off; the map alone needs it (static/map.js).

A value is never shown as markup: the page escapes every text, an image by value is only
ever a raster type in a `data:` address, and a file is shown by its link to the server's
own route (served with `Content-Security-Policy: sandbox`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from process_api.api.links import Base
from process_api.api.results import OutputForm, output_href
from process_api.jobs.files import FileResult
from process_api.jobs.model import Job

#: types shown inline by an <img>: raster images, and SVG (an <img> runs no script in it).
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/svg+xml"}
)
#: raster types an image value (base64) may be shown as: a data: address of these only.
DATA_IMAGE_TYPES = IMAGE_TYPES - {"image/svg+xml"}
GEOJSON_TYPES = frozenset({"application/geo+json", "application/vnd.geo+json"})
GEOJSON_TYPE_NAMES = frozenset(
    {
        "FeatureCollection",
        "Feature",
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
#: the largest GeoJSON file drawn on a map (the page downloads it whole).
MAP_MAX_BYTES = 5_000_000
#: the most JSON members and items shown as a tree; a larger value shows as text.
TREE_MAX_NODES = 2_000


@dataclass(frozen=True)
class OutputView:
    id: str
    #: file, link, image, number, boolean, null, text or json.
    kind: str
    value: Any = None
    #: what a link to it is called: the file's name, or the output's id.
    name: str = ""
    href: str | None = None
    media_type: str = ""
    size: int | None = None
    #: an <img> shows it (files, links and values of an image type).
    image: bool = False
    #: a map shows it (a GeoJSON value, or a file or link to GeoJSON).
    geojson: bool = False
    #: a JSON value small enough to show as a folding tree.
    tree: bool = False

    @property
    def size_text(self) -> str:
        return human_size(self.size) if self.size is not None else ""


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size:,} bytes"  # not reached


def looks_like_geojson(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in GEOJSON_TYPE_NAMES:
        return False
    return any(key in value for key in ("features", "geometry", "coordinates", "geometries"))


def _nodes(value: Any, budget: int) -> int:
    """The members and items of a JSON value, counted up to `budget` (then more)."""
    count = 0
    stack = [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _media(value: str) -> str:
    return value.split(";")[0].strip().lower()


def _image_data(form: OutputForm, value: Any) -> str | None:
    """A `data:` address for an image value sent as base64, if it is one."""
    media = _media(form.media_type)
    if not (form.base64 and media in DATA_IMAGE_TYPES and isinstance(value, str)):
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return f"data:{media};base64,{value}"


def output_view(base: Base, job: Job, output_id: str, value: Any, form: OutputForm) -> OutputView:
    if isinstance(value, FileResult):
        media = _media(value.type)
        return OutputView(
            output_id,
            "file",
            name=value.name,
            href=output_href(base, job, output_id),
            media_type=value.type,
            size=value.size,
            image=media in IMAGE_TYPES,
            geojson=media in GEOJSON_TYPES and value.size <= MAP_MAX_BYTES,
        )
    media = _media(form.media_type)
    if form.transmission == "reference":
        return OutputView(
            output_id,
            "link",
            name=output_id,
            href=output_href(base, job, output_id),
            media_type=form.media_type,
            image=media in IMAGE_TYPES,
            geojson=media in GEOJSON_TYPES,
        )
    data = _image_data(form, value)
    if data is not None:
        return OutputView(output_id, "image", data, media_type=form.media_type, image=True)
    if isinstance(value, bool):
        return OutputView(output_id, "boolean", value, media_type=form.media_type)
    if isinstance(value, int | float):
        return OutputView(output_id, "number", value, media_type=form.media_type)
    if value is None:
        return OutputView(output_id, "null", media_type=form.media_type)
    if isinstance(value, str):
        return OutputView(output_id, "text", value, media_type=form.media_type)
    return OutputView(
        output_id,
        "json",
        value,
        media_type=form.media_type,
        geojson=media in GEOJSON_TYPES or looks_like_geojson(value),
        tree=_nodes(value, TREE_MAX_NODES) <= TREE_MAX_NODES,
    )


def output_views(
    base: Base, job: Job, results: dict[str, Any], forms: dict[str, OutputForm]
) -> list[OutputView]:
    """`results` as `check_finished` gives them, in the order of `forms`."""
    return [
        output_view(base, job, output_id, results[output_id], form)
        for output_id, form in forms.items()
        if output_id in results
    ]
