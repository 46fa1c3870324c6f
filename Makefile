# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test floors lint bench clean postgres wordnet chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch lies on this disk; install it first so nothing pulls a CUDA build.
	$(BIN)/pip install -q $(TORCH)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/tunelab train examples/mnist1d_cnn.yaml --out runs/demo

test: $(VENV)/.dev-installed postgres wordnet chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q tests src/tunelab --doctest-modules

# The study tests start their own PostgreSQL server on 127.0.0.1 in a temporary directory; they
# need its server binaries. CI starts from a bare Debian machine as root, so they are installed
# there, saying so; as any other user nothing is installed and the PostgreSQL test skips, saying why.
PG_BINDIR_GLOB ?= /usr/lib/postgresql/*/bin
postgres:
	@if ls $(PG_BINDIR_GLOB)/initdb >/dev/null 2>&1 || (command -v initdb && command -v pg_ctl) >/dev/null; then \
	  true; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "postgres: server binaries not found, and not root, so not installing them; the PostgreSQL study test will be skipped (to run it: sudo apt-get install postgresql)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "postgres: server binaries not found and no apt-get to install them; the PostgreSQL study test will be skipped"; \
	else \
	  echo "installing Debian's postgresql for the study tests (root)…"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || \
	    echo "warning: could not install postgresql; the PostgreSQL study test will be skipped"; \
	fi

# text_augment reads synonyms from WordNet: Debian's wordnet-base (/usr/share/wordnet), read with
# nltk. As root (CI) it is installed, saying so; otherwise nothing is installed and the tests that
# need WordNet skip, saying why (text_augment then falls back to vocabulary words, and says so).
WORDNET_DIR ?= /usr/share/wordnet
wordnet:
	@if [ -f $(WORDNET_DIR)/data.noun ]; then \
	  true; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "wordnet: /usr/share/wordnet not found, and not root, so not installing it; the WordNet tests will be skipped (to run them: sudo apt-get install wordnet-base)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "wordnet: /usr/share/wordnet not found and no apt-get to install it; the WordNet tests will be skipped"; \
	else \
	  echo "installing Debian's wordnet-base for text_augment's synonyms (root)…"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null) || \
	    echo "warning: could not install wordnet-base; the WordNet tests will be skipped"; \
	fi

# The declared floors hold: a venv of its own with every dependency of pyproject.toml (and the dev
# extra) pinned at its minimum by .ci/floors.py, then a smoke subset of the tests that exercises
# each one. torch is exempt: the wheel on disk goes in first, and the constraint below makes pip
# fail rather than fetch another build. --only-binary: a floor must have a wheel for this Python.
# From scratch it took 5 min 23 s on 2 shared cores (pip downloads included; the tests ~1.5 min).
FLOORS := .venv-floors
FLOOR_TESTS := \
  tests/test_train.py::test_run_directory_is_complete_and_repeatable \
  tests/test_train.py::test_same_seed_same_metrics_and_other_seed_differs \
  tests/commands/test_train.py::test_train_prints_tables \
  tests/test_recipe.py \
  tests/test_train.py::test_regression_reports_metrics_in_data_units \
  tests/data/test_splits.py::test_split_sizes_and_stratification \
  tests/data/test_builtin.py::test_mnist1d_shapes_and_published_test_split \
  tests/data/test_image_folder.py::test_happy_path_png_and_jpeg \
  tests/methods/test_augment.py::test_image_transforms_keep_shape_differ_per_sample_and_follow_the_seed \
  tests/compress/test_structured.py::test_pruned_model_is_smaller_and_computes_what_the_masked_model_computes \
  tests/compress/test_quantize.py \
  tests/study/test_stats.py \
  tests/study/test_cv.py::test_stratified_folds_partition_the_data_and_keep_class_proportions \
  tests/study/search/test_samplers.py::test_every_sampler_runs \
  tests/study/search/test_run.py::test_running_again_resumes_without_recomputing \
  tests/study/test_postgres.py \
  tests/test_lr_find.py::test_plot_writes_a_png \
  tests/data/test_tokenize.py \
  tests/data/test_text.py::test_bbc_news_has_2225_articles_of_which_98_exact_copies \
  tests/data/test_features.py::test_features_are_the_mean_pooled_encoder_states \
  tests/models/test_transformer.py::test_pretrained_weights_load_into_every_tensor_but_the_new_head \
  tests/methods/test_augment_text.py::test_wordnet_synonyms_come_from_debians_files \
  tests/report/test_svg.py \
  tests/commands/test_report.py::test_train_writes_its_report_and_says_where \
  tests/report/test_browser.py::test_a_page_that_asks_for_the_network_is_caught \
  tests/test_loggers.py::test_mlflow_gets_params_metrics_the_model_and_the_run_directory

$(FLOORS)/.installed: pyproject.toml .ci/floors.py
	rm -rf $(FLOORS)
	$(PY) -m venv $(FLOORS)
	$(FLOORS)/bin/pip install -q --upgrade pip
	$(FLOORS)/bin/pip install -q $(TORCH)
	$(FLOORS)/bin/python .ci/floors.py --extras dev pyproject.toml > $(FLOORS)/floors.txt
	echo "$(TORCH)" > $(FLOORS)/torch.txt
	$(FLOORS)/bin/pip install -q --only-binary :all: -c $(FLOORS)/torch.txt -r $(FLOORS)/floors.txt
	$(FLOORS)/bin/pip install -q --no-deps -e .
	$(FLOORS)/bin/pip check
	touch $@

floors: $(FLOORS)/.installed postgres wordnet chromium
	@echo "floors: $$(tr '\n' ' ' < $(FLOORS)/floors.txt)"
	$(FLOORS)/bin/ruff check src tests benchmarks
	$(FLOORS)/bin/python -m pytest -q -p no:cacheprovider --disable-warnings $(FLOOR_TESTS)

# The report tests open every kind of report in Debian's headless chromium, driven by Playwright
# (which never downloads a browser here). Installed the way PostgreSQL is: as root (CI's bare Debian
# machine) it is installed, saying so; as any other user nothing is installed and the browser tests
# skip, saying why.
CHROMIUM_BIN ?= /usr/lib/chromium/chromium
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -x $(CHROMIUM_BIN) ]; then \
	  true; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "chromium: not found, and not root, so not installing it; the report's browser tests will be skipped (to run them: sudo apt-get install chromium)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "chromium: not found and no apt-get to install it; the report's browser tests will be skipped"; \
	else \
	  echo "installing Debian's chromium for the report's browser tests (root)…"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "warning: could not install chromium; the report's browser tests will be skipped"; \
	fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(FLOORS) runs .pytest_cache
