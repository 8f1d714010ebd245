"""JupyterLab in a user's server: "Make this folder an environment".

Two halves. The frontend (TypeScript in ``labextension/``, built into
``share/labextensions/tljh-rees-lab``) adds the command, its dialog and the build log
panel. This package is the Jupyter Server half: it reads the folder on the server's own
disk and talks to the rees service as the server's owner, with the server's Hub token
(``JUPYTERHUB_API_TOKEN``), so no token is ever copied into the browser.

The spawner mounts this folder read-only into every server it starts and points
``PYTHONPATH``, ``JUPYTER_PATH`` and ``JUPYTER_CONFIG_PATH`` at it, so the extension works
in any environment, including ones built before it existed. It runs in the image's own
Python: standard library, tornado and jupyter_server only.
"""



def _jupyter_server_extension_points():
    return [{"module": "tljh_rees_lab"}]


def _load_jupyter_server_extension(server_app):
    from .handlers import setup_handlers  # jupyter_server: only where a server runs

    setup_handlers(server_app)
