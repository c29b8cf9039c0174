"""nbgrader configuration for the course (read by `nbgrader ...` and by `course`)."""
import os

c = get_config()  # noqa: F821  (injected by traitlets)

here = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = here
c.CourseDirectory.course_id = "transformers-course"
# The single source of truth and its generated student version.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The class gradebook. Any SQLAlchemy URL works here, e.g. a shared PostgreSQL:
#   c.CourseDirectory.db_url = "postgresql://grader@db.example.edu/course"
c.CourseDirectory.db_url = os.environ.get("COURSE_GRADEBOOK", f"sqlite:///{os.path.join(here, 'gradebook.db')}")
# Keep student work small: notebooks with huge outputs are refused.
c.CourseDirectory.max_file_size = 10_000
