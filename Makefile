# Two commands for a newcomer: `make demo` and `make test`. Both set up what they need, idempotently:
# the second run neither reinstalls (stamps depend on pyproject.toml) nor refetches (verified model files stay).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
TEST_MODEL    := smollm2-135m

.PHONY: demo test test-fast lint sysdeps sysdeps-test models clean

demo: $(VENV)/.stamp-runtime
	$(BIN)/glassmate models fetch
	$(BIN)/glassmate demo

test: $(VENV)/.stamp-test | sysdeps-test
	$(BIN)/glassmate models fetch $(TEST_MODEL)
	$(BIN)/ruff check .
	$(BIN)/python results/render.py --check
	$(BIN)/python -m pytest

# The fast tier: no model file, a scripted fake engine instead (under a minute on 2 cores).
test-fast: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -m "not model"

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .

# Debian packages a bare machine lacks: a C/C++ toolchain (llama-cpp-python compiles llama.cpp) and venv.
sysdeps:
	@missing=""; \
	command -v cc  >/dev/null 2>&1 || missing="$$missing build-essential"; \
	command -v c++ >/dev/null 2>&1 || missing="$$missing g++"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# What the tests add: headless Chromium for the HUD test; PulseAudio (virtual devices), PortAudio and its ALSA
# pulse plugin for the voice test; espeak-ng, the text-to-speech fallback.
TEST_DEBS := chromium pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins espeak-ng
sysdeps-test:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

$(BIN)/python: | sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python builds llama.cpp from source the first time (~7 min on 2 cores); pip caches that wheel.
$(VENV)/.stamp-runtime: pyproject.toml | $(BIN)/python
	@echo "installing glassmate (the first build of llama.cpp takes several minutes)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-runtime
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

models: $(VENV)/.stamp-runtime
	$(BIN)/glassmate models fetch --all

clean:
	rm -rf $(VENV) .glassmate .pytest_cache .ruff_cache *.egg-info
