from nbgrader.server_extensions import load, points


def _jupyter_server_extension_points():
    return points(__name__)


def _load_jupyter_server_extension(server_app):
    load(__name__, server_app)
