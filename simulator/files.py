"""Generated media, served by the simulator itself at GET /_sim/files/{name}.

The PNG is a valid 1x1 image; the other formats carry just their magic bytes,
enough for content sniffing but not a decodable picture or video.
"""

import base64
import struct
import zlib
from pathlib import PurePosixPath

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG = b"".join(
    [
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)),
        _png_chunk(b"IDAT", zlib.compress(b"\x00\x4a\x90\xe2")),
        _png_chunk(b"IEND", b""),
    ]
)
"""A 1x1 RGB PNG of genq blue."""
MP4 = (
    struct.pack(">I", 24)
    + b"ftypmp42"
    + b"\x00\x00\x00\x00mp42isom"
    + struct.pack(">I", 8)
    + b"mdat"
)
WEBP = b"RIFF" + struct.pack("<I", 12) + b"WEBPVP8L" + b"\x00\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
MEDIA = {
    ".png": (PNG, "image/png"),
    ".mp4": (MP4, "video/mp4"),
    ".webp": (WEBP, "image/webp"),
    ".jpg": (JPEG, "image/jpeg"),
}
"""File suffix to (content, media type)."""


def png_base64() -> str:
    """The PNG as an images API returns it in b64_json."""
    return base64.b64encode(PNG).decode()


def file_url(request: Request, name: str) -> str:
    """The absolute URL at which this simulator serves the file name."""
    return str(request.url_for("sim_file", name=name))


async def get_file(request: Request) -> Response:
    """Any name with a known suffix is a file: generated media is never stored."""
    found = MEDIA.get(PurePosixPath(request.path_params["name"]).suffix)
    if found is None:
        return JSONResponse({"detail": "Not found."}, status_code=404)
    content, media_type = found
    return Response(content, media_type=media_type)


routes = [Route("/_sim/files/{name}", get_file, methods=["GET"], name="sim_file")]
