"""The writer process of ``recommender serve``: the one process that loads the model and takes every write (and
``POST /similar``), on a Unix socket that only the read workers call (``service.forward``). It runs the whole app
(``create_app`` without a writer socket) but leaves the stored boxes to the refresher process, so a write is
answered exactly as in one process, after its transaction commits, without waiting for the GIL behind box
refreshes.

    python -m service.writer SOCKET PARENT_PID    # started (and restarted after a crash) by recommender.processes"""

from __future__ import annotations

import logging.config
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import uvicorn

    from recommender.logs import log_config
    from recommender.processes import die_with_parent
    from recommender.settings import Settings
    from service.app import create_app
    from service.serving import server_options

    socket, parent = Path(argv[0]), int(argv[1])
    die_with_parent(parent)
    settings = Settings().model_copy(update={"writer_socket": None})  # this process writes itself
    logs = log_config(settings.log_format, level="WARNING")
    logging.config.dictConfig(logs)
    uvicorn.run(create_app(settings, refresh_boxes=False), uds=str(socket), log_config=logs, access_log=False,
                **server_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
