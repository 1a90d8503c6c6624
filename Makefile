# Two entry points, both self-contained on a fresh Debian machine (python3, make, root):
#   make run   - set everything up and open the console on the embedded lab
#   make test  - set everything up and run the whole suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test system venv lab-status screenshots bench clean

system:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml | system
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: system $(STAMP)

run: venv
	@$(BIN)/mirrorctl lab init --if-missing
	$(BIN)/mirror-console

test: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n 2

screenshots: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m gui.screenshots docs/images

bench: venv
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
