"""The production entry point: `gunicorn referral_hub.wsgi:app`.

The app's own objects (modules, mappers, compiled templates, caches: about 140,000 of them)
live as long as the process. gc.freeze() moves them out of the collector's sight, so that a
full collection, which otherwise walks them all every few dozen requests (about 90 ms on a
small machine), only walks what requests left behind."""

import gc

from . import create_app

app = create_app()
gc.freeze()
