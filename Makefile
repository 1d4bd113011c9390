# Two commands do all the set-up on a fresh clone:
#   make demo   - create .venv, install hwgrad, run the default co-design study, write out/
#   make test   - create .venv, install hwgrad with test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: demo test test-slow lint docs bench clean figures

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

demo: $(BIN)/.installed
	mkdir -p $(OUT)
	$(BIN)/hwgrad eval --model llama-3.1-70b --hardware h100-sxm --chips 8 --tp 8 --batch 32 \
		--prompt-len 2048 --output-len 512 --weight-dtype fp8 --kv-dtype fp8 --json > $(OUT)/eval.json
	$(BIN)/hwgrad codesign --out $(OUT)/codesign
	@echo "wrote $(OUT)/eval.json and $(OUT)/codesign/ (report.md, trajectory.csv, pareto.csv, codesign.png)"

test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check hwgrad tests benchmarks experiments

docs: $(BIN)/.installed
	$(BIN)/python docs/gen_reference.py
	$(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python docs/check_site.py site

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

figures: $(BIN)/.installed
	$(BIN)/python experiments/run_all.py
	$(BIN)/python experiments/run_all.py --readme
