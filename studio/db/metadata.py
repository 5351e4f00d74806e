"""The one place that imports every table, so alembic and tests see the whole schema."""

from sqlmodel import SQLModel

from studio.auth import models as _accounts  # noqa: F401
from studio.civitai import models as _civitai  # noqa: F401
from studio.db import models as _foundation  # noqa: F401
from studio.downloads import models as _downloads  # noqa: F401
from studio.gallery import models as _gallery  # noqa: F401
from studio.gallery.fts import include_name as include_name  # the FTS5 index is not a model: not compared
from studio.idempotency import models as _idempotency  # noqa: F401
from studio.jobs import models as _jobs  # noqa: F401
from studio.llm import conversations as _llm_conversations  # noqa: F401
from studio.llm import presets as _llm_presets  # noqa: F401
from studio.models import inventory as _inventory  # noqa: F401
from studio.preferences import models as _preferences  # noqa: F401
from studio.runpage import models as _runpage  # noqa: F401
from studio.schedules import models as _schedules  # noqa: F401
from studio.telegram import models as _telegram  # noqa: F401
from studio.webhooks import models as _webhooks  # noqa: F401
from studio.workflows import models as _workflows  # noqa: F401

metadata = SQLModel.metadata
