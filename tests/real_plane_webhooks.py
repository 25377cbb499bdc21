"""Lists the webhook deliveries a REAL Plane made (its WebhookLog table), one line each:
time, X-Plane-Event, action, changed field and new value, actor, work item, the answer's
status and body, retry count. For manual checks (/work/shared/plane-real.md): did our own
PATCH echo back, how many deliveries, who is the actor, what did calplanebot answer.

Run inside Plane's Django shell (it needs Plane's models, so not with the project venv):

    cd /tmp/plane-src/apps/api && . /tmp/realplane/plane.env &&
      /tmp/realplane/venv/bin/python manage.py shell < /path/to/tests/real_plane_webhooks.py

The signature header is never printed.
"""
import ast
import json

from plane.db.models import WebhookLog  # noqa: E402 (Plane's ORM, only inside manage.py shell)

# How much of calplanebot's answer body to show.
BODY_CHARS = 60


def parsed(text):
    """Plane stores headers and bodies as Python reprs (sometimes JSON): read either."""
    if not text:
        return {}
    for read in (ast.literal_eval, json.loads):
        try:
            return read(text)
        except (ValueError, SyntaxError):
            continue
    return {}


for entry in WebhookLog.objects.order_by("created_at"):
    headers = parsed(entry.request_headers)
    body = parsed(entry.request_body)
    activity = body.get("activity") or {}
    actor = (activity.get("actor") or {}).get("display_name")
    item = str((body.get("data") or {}).get("id"))[:8]
    answer = (entry.response_body or "")[:BODY_CHARS].replace("\n", " ")
    print(entry.created_at.strftime("%H:%M:%S.%f")[:12], headers.get("X-Plane-Event"),
          body.get("action"), f"field={activity.get('field')}", f"new={activity.get('new_value')!r}",
          f"actor={actor}", f"item={item}", f"status={entry.response_status}", answer,
          f"retry={entry.retry_count}")
