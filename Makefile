# recog: set-up, demo, tests, benchmarks.  Every target depends on the venv,
# which is (re)built only when pyproject.toml changes.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test test-all bench browser lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# torchattacks pins requests~=2.25.1 (idna<3, which timm's huggingface_hub refuses) yet
	@# never imports requests: installed without its declared dependencies (see pyproject.toml)
	$(BIN)/python -m pip install --quiet --no-deps 'torchattacks>=3.5,<4'
	@touch $(STAMP)

demo: venv
	$(BIN)/python -m recog.demo

test: venv browser
	$(BIN)/python -m pytest -q

test-all: venv browser
	$(BIN)/python -m pytest -q -m ''

# The browser test drives Debian's chromium; install it when we are root with apt-get,
# otherwise leave it (the test then skips and says why).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
			|| echo "chromium could not be installed; the browser test will be skipped"; \
	fi

bench: venv
	$(BIN)/python bench/classify_train.py
	$(BIN)/python bench/detect_eval.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/detect_train.py
	$(BIN)/python bench/segment_train.py

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
