# nbgrader configuration for swarmhub's notebook image (/etc/jupyter).
#
# The exchange is the shared volume the orchestrator mounts at `exchange_dir`
# (default /home/jovyan/.exchange); keep NBGRADER_EXCHANGE_ROOT and
# exchange_dir equal. The course id comes from the orchestrator's
# configuration through NBGRADER_COURSE_ID; an instructor's course directory
# lives in their persistent workspace, $HOME/<course_id>.
# The student id is JUPYTERHUB_USER, which nbgrader (>= 0.6) reads itself.
import os

c = get_config()  # noqa: F821 (provided by traitlets when loading)

c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/home/jovyan/.exchange")

course_id = os.environ.get("NBGRADER_COURSE_ID", "").strip()
if course_id:
    c.CourseDirectory.course_id = course_id
    c.CourseDirectory.root = os.path.join(os.environ.get("HOME", "/home/jovyan"), course_id)
