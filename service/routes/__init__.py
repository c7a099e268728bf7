"""The API's routes, one router per area; ``service.app`` wires them."""

from service.routes import articles, editorial, ops, pages, similar

ROUTERS = (similar.router, articles.router, editorial.router, ops.router, pages.router)
