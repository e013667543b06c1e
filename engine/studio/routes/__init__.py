"""The studio's HTTP API, one router per resource, all under ``/api`` (execution ids contain
``/`` and are taken as they are). Each module offers ``router(...)``, given what its routes
need; :func:`engine.studio.app.create_app` includes them in this order:

* :mod:`.info`: ``GET /info``: task queue, namespace, Temporal UI, enums;
* :mod:`.workflows`:

  * ``GET /workflows``: definitions with name, mode, version and sizes;
  * ``GET|PUT|DELETE /workflows/{id}``: read, register or update, unregister;
  * ``POST /validate``: validate without saving, ``ok`` or the problems;

* :mod:`.catalog`: ``GET /catalog``: plugins and engine-run nodes with their configuration
  schemas;
* :mod:`.executions`:

  * ``POST /workflows/{id}/executions``: start (``{"input_data": {...}}``);
  * ``GET /executions?workflow_id=&status=&limit=``: active and recent executions;
  * ``GET /executions/{id}``: context, definition snapshot, Temporal UI link;
  * ``GET /executions/{id}/events``: Server-Sent Events until the terminal event;
  * ``POST /executions/{id}/pause|resume|cancel|retry``: control;
  * ``POST /executions/{id}/nodes/{node}/skip|approve``: per-node control;

* :mod:`.hook_admin`: ``GET|POST /hooks``, ``DELETE /hooks/{id}``, ``POST /hooks/{id}/rotate``:
  manage webhooks (a secret is shown once, when created or rotated);
* :mod:`.schedules`:

  * ``GET /schedules?workflow_id=``: this task queue's schedules;
  * ``POST /workflows/{id}/schedules``: create (cron or interval, overlap, ...);
  * ``GET|DELETE /schedules/{id}``: describe (next and recent runs), delete;
  * ``POST /schedules/{id}/pause|resume|trigger|backfill``: control;

* and last :func:`engine.studio.api.unknown_route`, a JSON 404 for any other path.

Outside ``/api``, :mod:`.hooks` serves ``POST /hooks/{id}``: signed webhook deliveries (no
token: the hook's signature authenticates them).

Nothing is stored here: definitions come from the registry, executions and their events from
Temporal, the catalog from the workers' published catalog. Errors become JSON bodies as
:mod:`engine.studio.api` says.
"""
