"""Response compression for everything the app answers itself.

Static files are answered before this (WhiteNoise, compressed ahead of time). Pages, layer
answers, API answers and CSV exports are gzip-compressed when the browser accepts it.
Incident photos and other media are already compressed: gzip would only cost CPU and drop
their Content-Length, so they go as they are.
"""

from django.middleware.gzip import GZipMiddleware

# Content types sent as they are (compressed formats).
ALREADY_COMPRESSED = ("image/", "video/", "audio/", "application/zip", "application/gzip")


class CompressionMiddleware(GZipMiddleware):
    """Django's GZipMiddleware (with its BREACH mitigation), except for compressed media.
    SVG images are text and are compressed."""

    def process_response(self, request, response):
        kind = response.get("Content-Type", "")
        if kind.startswith(ALREADY_COMPRESSED) and not kind.startswith("image/svg"):
            return response
        return super().process_response(request, response)
