# Two commands on a fresh machine with only Python 3.11+:
#   make demo   set up .venv and run the main job on synthetic data
#   make test   set up .venv with the dev extras and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := data/demo

.PHONY: demo test bench-quality install install-dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/leadscore generate --leads 20000 --seed 7 --accounts --out $(DEMO)/history
	$(BIN)/leadscore train --config configs/demo.yaml
	$(BIN)/leadscore promote --config configs/demo.yaml
	$(BIN)/leadscore generate --leads 3000 --seed 8 --start 2026-06-01 --days 150 --recycling --accounts --out $(DEMO)/fresh
	rm -rf $(DEMO)/score_history
	$(BIN)/leadscore score --model models:/leadscore@champion --input $(DEMO)/fresh --as-of 2026-11-01 \
		--output $(DEMO)/fresh_scores.csv --top 10 --history $(DEMO)/score_history
	# Two weeks later, the same leads again: the history shows what changed and who crossed MQL / SQL.
	$(BIN)/leadscore score --model models:/leadscore@champion --input $(DEMO)/fresh --as-of 2026-11-15 \
		--output $(DEMO)/fresh_scores_2026-11-15.csv --history $(DEMO)/score_history
	$(BIN)/leadscore history --history $(DEMO)/score_history --top 5
	# The funnel of the fresh leads: stage-to-stage rates per episode, sales' rejections and recycled leads apart.
	$(BIN)/leadscore funnel --input $(DEMO)/fresh
	# Later (the synthetic export runs ahead of its scoring dates): did the November scores mean what they said?
	$(BIN)/leadscore monitor --history $(DEMO)/score_history --outcomes $(DEMO)/fresh --observed-until 2027-03-01 \
		--out $(DEMO)/monitoring

test: install-dev
	$(BIN)/python -m pytest

# leadscore against a plain logistic regression, default LightGBM, FLAML AutoML and the points rules on the
# real data in ../shared/data (or LEADSCORE_DATA_DIR): random, out-of-time and rolling-origin protocols,
# paired bootstrap intervals, training time; writes benchmarks/results/quality.md. Takes about ten to
# fifteen minutes on 2 cores (`python benchmarks/quality.py --quick` for a two-minute check).
bench-quality: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) data mlflow.db mlartifacts mlruns .pytest_cache
