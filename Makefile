# The course's two commands:
#   make book   set up .venv, regenerate assignments/ from solutions/, build the book
#   make test   set up .venv and run every test
# Everything runs inside .venv, created here from pyproject.toml's pins.

PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
# nbgrader starts `alembic` as a subprocess, so the venv's bin/ must come first.
export PATH := $(BIN):$(PATH)
# Book pages read the data files from ../shared/data unless told otherwise.
export COURSE_DATA ?= $(abspath $(CURDIR)/../shared/data)

# Test processes: 2 took the suite from 234 s to 166 s on a 2-core machine. Tests
# are shared out one by one, except those of a module with costly fixtures (a class
# to grade, the built book), which stay in one process (pytest.mark.xdist_group).
JOBS ?= 2

.PHONY: book release test test-fast audit venv clean

# One torch thread per page: pages compute on tiny tensors, and two threads on a
# busy 2-core machine made a page's small training loop 250 times slower.
book: venv release
	COURSE_BOOK_BUILD=1 OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

release: venv
	$(BIN)/course release

test: venv
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

audit: venv
	$(BIN)/course audit --jobs 2

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[postgres]"
	touch $@

clean:
	rm -rf _build $(VENV)
