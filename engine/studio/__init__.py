"""The studio: a web UI over :class:`~engine.client.orchestrator.AdvancedPluginOrchestrator` to
design graph workflows and watch their durable runs live.

    from engine.studio import serve
    await serve(orchestrator, host="127.0.0.1", port=8080, ui_url=None, token=None)

:func:`create_app` gives the ASGI app (a thin JSON API under ``/api``, the webhook receiver
at ``/hooks/{id}``, plus the built front end, packaged in ``static/``; its sources are in the
repository's ``studio/``); :func:`create_hooks_app` the webhook receiver alone (``orchestrator
serve``).
"""

from engine.studio.app import create_app, create_hooks_app
from engine.studio.server import StudioServer, check_binding, serve

__all__ = ["StudioServer", "check_binding", "create_app", "create_hooks_app", "serve"]
