"""Names and version of the results file layout (documented in docs/results-schema.md)."""

SCHEMA_VERSION = "1.5"
"""Changes when the file layout changes, independently of the package version."""

STATUSES = ("passed", "skipped", "failed", "error")
"""Check statuses, least to most severe; a check's agreed status is the most severe on any rank."""

ROOT_ATTRS = (
    "schema_version",
    "tessera_mpi_version",
    "created",
    "world_size",
    "mesh_axes",
    "mesh_shape",
    "mpi_library_version",
    "mpi4py_version",
    "numpy_version",
    "backend",
    "cuda_aware",
    "command_line",
    "launcher",
)
"""Attributes every results file has at its root; `git_commit` and `slurm_*` are added where known."""
