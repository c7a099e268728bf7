"""What the service refuses to start with. `recommender serve` checks it before it starts a process, without
importing the app (whose imports are most of a start), and every app checks it again when it is built."""

from __future__ import annotations

from recommender.settings import Settings
from service.html import BoxRenderer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class OpenWritesRefused(RuntimeError):
    pass


def refuse_open_writes(settings: Settings) -> None:
    """Unauthenticated writes are only ever reachable from this machine."""
    if settings.host not in LOOPBACK and settings.api_token is None and settings.allow_writes:
        raise OpenWritesRefused(
            f"refusing to serve writes on {settings.host} without a token: set RECOMMENDER_API_TOKEN, "
            "or RECOMMENDER_ALLOW_WRITES=false for a read-only replica"
        )


def box_renderer(settings: Settings) -> BoxRenderer:
    """The HTML box's renderer for ``settings``, once writes are known not to be open to the network; raises
    ``OpenWritesRefused``, or ``service.html.TemplateMissing`` for a box template that is not there."""
    refuse_open_writes(settings)
    return BoxRenderer(settings.box_template, settings.box_locale, settings.box_time_zone)
