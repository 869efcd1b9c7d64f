"""Server-rendered pages (PROTOCOL §5): the front door ``/``, sign-in and
sign-up, the developer console ``/console``, the end-user account page
``/account`` and the references under ``/docs`` — Jinja2 templates in
``templates/``, CSS and a little JavaScript in ``static/`` (copy buttons,
confirmations), nothing loaded from elsewhere.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from openplatform.services import Services
from openplatform.web.account import AccountPage
from openplatform.web.console import Console
from openplatform.web.explorer import Explorer
from openplatform.web.pages import WebPages
from openplatform.web.reference import Reference
from openplatform.web.signin import SignIn

__all__ = ["web_routes"]


def web_routes(services: Services) -> list[BaseRoute]:
    web = WebPages(services)
    signin = SignIn(web)
    account = AccountPage(web)
    console = Console(web)
    explorer = Explorer(web)
    reference = Reference(web)

    async def home(request: Request) -> Response:
        return await web.page(request).render("home.html")

    get, post, both = ["GET"], ["POST"], ["GET", "POST"]
    return [
        Route("/", home, methods=get),
        Route("/signin", signin.sign_in, methods=both),
        Route("/signup", signin.sign_up, methods=both),
        Route("/signout", signin.sign_out, methods=post),
        Route("/account", account.show, methods=get),
        Route("/account/apps/{app_id}/revoke", account.revoke, methods=post),
        Route("/console", console.apps, methods=get),
        Route("/console/apps/new", console.new_app, methods=both),
        Route("/console/apps/{app_id}", console.app, methods=get),
        Route("/console/apps/{app_id}/secret", console.secret, methods=post),
        Route("/console/apps/{app_id}/settings", console.settings, methods=both),
        Route("/console/apps/{app_id}/delete", console.delete, methods=post),
        Route("/console/apps/{app_id}/usage", console.usage, methods=get),
        Route("/console/explorer", explorer.show, methods=get),
        Route("/console/explorer", explorer.send, methods=post),
        Route("/docs/methods", reference.methods, methods=get),
        Route("/docs/methods/{name}", reference.method, methods=get),
        Route("/docs/errors", reference.errors, methods=get),
        Route("/docs/admin-api", reference.admin_api, methods=get),
    ]
