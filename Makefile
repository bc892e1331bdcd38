# Quick start: `make suite` (72 ranks) and `make test`. Both create .venv and install what they need.
# On a cluster with the site MPI: make suite EXTRAS=test MPIRUN=mpirun MPIRUN_FLAGS= NP=72

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test,local-mpi
NP ?= 72
MPIRUN ?= $(BIN)/mpirun
MPIRUN_FLAGS ?= --oversubscribe
# The packaged Open MPI (the default MPIRUN) has ULFM, so `make suite` kills real processes in
# the faults check; with another MPI it runs the simulated mode (and says so), unless
# SUITE_FT=--with-ft ulfm (or your MPI's equivalent) is given.
SUITE_FT ?= $(if $(filter $(BIN)/mpirun,$(MPIRUN)),--with-ft ulfm,)
SUITE_ARGS ?=
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

# Open MPI refuses to start as root unless told twice; CI containers run as root.
ifeq ($(shell id -u),0)
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
endif

.PHONY: suite plot test test-unit test-mpi test-e2e install clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

suite: $(STAMP)
	$(MPIRUN) $(MPIRUN_FLAGS) $(SUITE_FT) -n $(NP) $(BIN)/python -m tessera_mpi.suite $(SUITE_ARGS)

# Plots of the newest results file (or RESULTS=path/to/file.h5) into results/plots/.
RESULTS ?= $(shell ls -t results/*.h5 2>/dev/null | head -1)
plot: $(STAMP)
	@test -n "$(RESULTS)" || { echo "no results file in results/: run make suite first" >&2; exit 2; }
	$(BIN)/python scripts/plot_bandwidth.py $(RESULTS) -o results/plots

test: test-unit test-mpi test-e2e

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

# A rank that fails an assertion must not leave the others hanging; timeout ends the job regardless.
test-mpi: $(STAMP)
	timeout 600 $(MPIRUN) $(MPIRUN_FLAGS) -n 4 $(BIN)/python -m pytest -q -p no:cacheprovider --with-mpi tests/mpi

# --durations: the slowest tests in every log, so that the 15-minute budget can be kept.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 tests/e2e

clean:
	rm -rf $(VENV) build *.egg-info
