"""The environment catalog: which environments exist, who may see, launch and change
them, and with which profile. Pages, the JSON API, the spawner, launch links, the
gallery, exports and builds all ask it; none of them decides these on its own."""

from .access import Viewer
from .catalog import Catalog, LaunchPlan, Page
from .profiles import Profiles

__all__ = ["Catalog", "LaunchPlan", "Page", "Profiles", "Viewer"]
