"""HTML pages, rendered from Jinja2 templates with the Hub's look."""

from __future__ import annotations

import os

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tornado import web
from tornado.escape import xhtml_escape

from ..errors import Forbidden, InputError
from ..operations.dashboard import RANGES, Dashboard
from ..settings import readable_size
from .base import BaseHandler, error_message

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates")
_jinja = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())

# The service's own navigation (path under the service prefix, label); page.html adds
# ADMIN_NAV for admins.
NAV = [("", "Environments"), ("gallery", "Gallery"), ("servers", "Servers")]
NAV.append(("composer", "Composer"))
NAV.append(("templates", "Templates"))
ADMIN_NAV = [("dashboard", "Dashboard")]


def render_public(page: str, **context) -> str:
    """A page for visitors who are not logged in (no navigation, no user)."""
    return _jinja.get_template(page).render(**context)


class PageHandler(BaseHandler):
    def render_page(self, template: str, active: str = "", **context) -> None:
        html = _jinja.get_template(template).render(
            user=self.current_user,
            prefix=self.urls.service_prefix,
            hub_prefix=self.urls.hub_prefix,
            xsrf_token=self.xsrf_token.decode("ascii"),
            static_url=self.static_url,
            nav=NAV,
            admin_nav=ADMIN_NAV,
            active=active,
            permissions=self.permissions(),
            **context,
        )
        self.finish(html)

    def profiles_context(self) -> dict:
        """The admin's machine profiles, for pickers: name, label and limits."""
        profiles = self.catalog.profiles
        return {
            "profiles": [{"name": p["name"], "label": p.get("label") or p["name"],
                          "cpu": p.get("cpu"), "memory_text": p.get("memory_text"),
                          "description": p.get("description", "")}
                         for p in profiles.all],
            "default_profile": profiles.default,
        }

    def write_error(self, status_code, **kwargs):
        message = error_message(status_code, kwargs.get("exc_info", (None, None, None))[1])
        self.finish(f"<!DOCTYPE html><title>{status_code}</title><h1>{status_code}</h1>"
                    f"<p>{xhtml_escape(message)}</p>")


class EnvironmentsPage(PageHandler):
    """The service's front page: environments, adding and rebuilding them, build logs."""

    @web.authenticated
    def get(self):
        # Build arguments are the admin's: the page names them (a Dockerfile could print
        # their values, so they are no secret; README says so).
        build_args = sorted(getattr(self.settings["builder"], "build_args", None) or {})
        self.render_page("environments.html", active="", build_args=build_args,
                         allow_local_repos=self.builds.allow_local_repos,
                         **self.profiles_context())


class ServersPage(PageHandler):
    """The user's servers started from environments: open, stop, start new ones."""

    @web.authenticated
    def get(self):
        self.render_page("servers.html", active="servers", **self.profiles_context())


class TemplatesPage(PageHandler):
    """Templates the caller may see; registering them (builders), their warm pools
    (admins). The page asks the API for everything; it decides nothing itself."""

    @web.authenticated
    def get(self):
        machine = self.settings["templates"].machine
        self.render_page("templates.html", active="templates",
                         machine={"cpus": f"{machine.cpus:g}",
                                  "memory": readable_size(machine.memory),
                                  "total_cpus": f"{machine.total_cpus:g}",
                                  "total_memory": readable_size(machine.total_memory),
                                  "one": machine.describe_one,
                                  "all": machine.describe_all})


class DashboardPage(PageHandler):
    """Admins only: builds, the queue, the disk and launches over the last day or week,
    drawn on the server as SVG (operations/dashboard.py)."""

    @web.authenticated
    def get(self):
        if not self.viewer.admin:
            raise Forbidden("the dashboard is for admins")
        range_name = self.get_argument("range", "day")
        if range_name not in RANGES:
            raise InputError("range", f"range must be one of: {', '.join(RANGES)}")
        gc = self.settings["gc"]
        dashboard = Dashboard(self.catalog, self.settings["sampler"], gc.high, gc.low)
        self.render_page("dashboard.html", active="dashboard",
                         **dashboard.context(range_name))


class EnvironmentsRedirect(BaseHandler):
    """``environments`` is the front page's older address."""

    def get(self):
        self.redirect(self.urls.service_prefix, permanent=False)


def routes() -> list:
    return [
        ("", EnvironmentsPage),
        ("environments", EnvironmentsRedirect),
        ("servers", ServersPage),
        ("templates", TemplatesPage),
        ("dashboard", DashboardPage),
    ]
