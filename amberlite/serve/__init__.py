"""``amberlite serve``: an HTTP API (``/v1``, OpenAPI docs at ``/v1/docs``) and a web app
where editors search, review match cuts and annotate, over one store.

Modules: :mod:`~amberlite.serve.app` (routes, errors, the token / read-only / body-size
guard), :mod:`~amberlite.serve.media` (frames, strips, clips), :mod:`~amberlite.serve.jobs`
(materializations in worker processes, state in the store), :mod:`~amberlite.serve.export`
(EDL and OpenTimelineIO). Nothing here is imported by a warm CLI query.
"""
