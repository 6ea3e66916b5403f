"""Serving a content-addressed blob over HTTP, whole or one ``Range`` (206, ``Content-Range``)."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from edgefleet.server.blobs import BlobStore, iter_file, parse_range

__all__ = ["blob_response"]


def blob_response(blobs: BlobStore, sha256: str, range_header: str | None) -> StreamingResponse:
    path = blobs.path(sha256)
    size = path.stat().st_size
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256}"',
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    rng = parse_range(range_header, size) if size else None
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            iter_file(path, 0, size - 1), media_type="application/octet-stream", headers=headers
        )
    start, end = rng
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        iter_file(path, start, end), status_code=206, media_type="application/octet-stream", headers=headers
    )
