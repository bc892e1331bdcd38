"""Tensor, pipeline and data parallelism of a small MLP stack, validated against a reference."""

from .model import ModelSpec
from .pipeline import ScheduleError, check_schedule, one_f_one_b
from .plan import Grid, Plan, PlanError
from .trainer import Trainer
from .validation import Validation, validate
from .verify import TOLERANCES

__all__ = [
    "TOLERANCES",
    "Grid",
    "ModelSpec",
    "Plan",
    "PlanError",
    "ScheduleError",
    "Trainer",
    "Validation",
    "check_schedule",
    "one_f_one_b",
    "validate",
]
