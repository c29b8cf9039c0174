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

.PHONY: book release test test-fast venv clean

book: venv release
	COURSE_BOOK_BUILD=1 $(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

release: venv
	$(BIN)/course release

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

clean:
	rm -rf _build $(VENV)
