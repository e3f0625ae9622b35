"""The problem classes the hub knows (the catalog)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from hub.api.deps import READERS, require
from hub.api.schemas import ProblemClassOut
from hub.cases import classes

router = APIRouter(prefix="/classes", tags=["classes"], dependencies=[Depends(require(*READERS))])


@router.get("", response_model=list[ProblemClassOut], summary="Problem classes with SLA and dedup distance")
def list_classes() -> list[dict[str, Any]]:
    return [
        {**c.model_dump(include={"id", "code", "name_zh", "name_en", "sla_hours", "labels", "coco"}),
         "family": c.family.value, "priority": c.priority.value,
         "dedup_radius_m": classes.dedup_policy(c.id).radius_m}
        for c in classes.catalog()
    ]
