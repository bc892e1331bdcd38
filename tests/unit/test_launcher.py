"""Launcher detection from the environment."""

from tessera_mpi.runtime import detect_launcher


def test_mpirun():
    info = detect_launcher({"PRTE_LAUNCHED": "1", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1"})
    assert (info.launcher, info.env_rank, info.env_local_rank) == ("mpirun", 3, 1)
    assert info.describe() == "mpirun"


def test_mpirun_inside_a_slurm_allocation():
    info = detect_launcher({"OMPI_COMM_WORLD_SIZE": "72", "SLURM_JOB_ID": "99", "SLURM_JOB_NODELIST": "n[01-18]"})
    assert info.launcher == "mpirun" and info.slurm_job_id == "99"
    assert info.describe() == "mpirun (Slurm job 99 on n[01-18])"


def test_srun():
    info = detect_launcher({"SLURM_PROCID": "17", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
                            "SLURM_JOB_ID": "1234", "SLURM_NODELIST": "gpu[01-18]",
                            "SLURM_JOB_PARTITION": "nvl72", "SLURM_CLUSTER_NAME": "rack7"})
    assert (info.launcher, info.env_rank, info.env_local_rank) == ("srun", 17, 1)
    assert (info.slurm_partition, info.slurm_cluster) == ("nvl72", "rack7")
    assert info.describe() == "srun (Slurm job 1234 step 0 on gpu[01-18])"


def test_hydra_and_singleton():
    assert detect_launcher({"PMI_RANK": "2", "MPI_LOCALRANKID": "0"}).launcher == "hydra"
    info = detect_launcher({})
    assert info.launcher == "singleton" and info.env_rank is None
