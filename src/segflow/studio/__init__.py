"""segflow studio: the annotation and review web application.

``create_app(db_url, data_dir)`` builds the FastAPI app; ``segflow studio`` serves it. The
studio is a shell over the library: assist tools, pre-labels, imports and exports call
``segflow.ops``, ``segflow.segment``, ``segflow.pipeline``, ``segflow.predict`` and
``segflow.formats``.
"""

from segflow._extras import require

require("studio", what="segflow.studio")
