"""Responses of 1 KB or more go gzipped to every client that accepts it, the API's JSON too.

Flask-Compress (maintained under pallets-eco) does it rather than code of our own: it sets
Vary and Content-Length, keeps ETags and conditional requests right, and compresses HEAD as
GET, so HEAD answers with GET's headers. Only gzip, which every browser and HTTP library
reads; only text types: images, PDFs and fonts are compressed already.
"""

from flask_compress import Compress

COMPRESSED_TYPES = [
    "text/html",
    "text/css",
    "text/csv",
    "text/plain",
    "application/json",
    "application/problem+json",
    "application/yaml",
    "image/svg+xml",
]

compress = Compress()


def configure(app):
    """Register first, so that it runs after every other after_request function."""
    app.config.setdefault("COMPRESS_ALGORITHM", "gzip")
    app.config.setdefault("COMPRESS_MIN_SIZE", 1024)
    app.config.setdefault("COMPRESS_MIMETYPES", COMPRESSED_TYPES)
    compress.init_app(app)
