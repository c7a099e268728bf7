"""The API's routes, one router per area; ``service.app`` wires them."""

from service.routes import articles, editorial, events, experiments, ops, pages, similar

ROUTERS = (similar.router, articles.router, editorial.router, events.router, experiments.router, ops.router,
           pages.router)
