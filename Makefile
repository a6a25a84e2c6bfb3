# The newcomer's interface (README): make demo, make test. Also: converge, lab-exec,
# lab-down, lint, unit, molecule. Every target installs what it needs itself.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
LABCTL    := lab/labctl
DEMO_HOST ?= demo
DEMO_INVENTORY ?= inventories/demo/hosts.yml
STAMP     := $(VENV)/.installed
COLLECTION_LINK := .collections/ansible_collections/webhosting/pods
# The lowest ansible-core meta/runtime.yml claims (make compat tests it: its newest patch).
COMPAT_VENV ?= .venv-compat
COMPAT_CORE := $(shell sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' meta/runtime.yml)
COMPAT_STAMP := $(COMPAT_VENV)/.installed-$(COMPAT_CORE)
# userpod for tenants in one file: bin/userpod and the engine modules it imports (a zipapp).
USERPOD_PYZ ?= build/userpod.pyz

# lab/bin first: its nsenter moves Ansible's process into the lab host's own cgroup
# before entering it (systemd 257's logind refuses linger otherwise; docs/lab.md).
export PATH := $(CURDIR)/lab/bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0
# `make lab-exec CMD='...'`: the command reaches the recipe through the environment,
# taken literally ($(value)), so make expands nothing in it and only the lab host's
# /bin/sh parses it, once.
LAB_CMD := $(value CMD)
export LAB_CMD
unexport CMD

.PHONY: help deps venv collection lab demo converge lab-exec lab-down lint unit molecule compat test userpod clean $(addprefix molecule-,$(MOLECULE_SCENARIOS))

help:
	@echo "make demo      set up everything and run site.yml against the demo lab host"
	@echo "make test      lint + unit + molecule (what CI runs)"
	@echo "make converge  apply site.yml again to the running demo lab host"
	@echo "make lab-exec CMD='...'  run CMD as root on the demo lab host"
	@echo "make lab-down  stop every lab host and its services"
	@echo "make userpod   build userpod for tenants as one file, $(USERPOD_PYZ) (docs/userpod.md)"

deps:
	$(PYTHON) $(LABCTL) deps

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(STAMP)

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

collection: $(COLLECTION_LINK)

# labctl up builds (or reuses) the cached root file system, then boots the host.
lab: deps
	$(LABCTL) up $(DEMO_HOST) --release bookworm

demo: deps venv collection lab
	ansible-playbook -i $(DEMO_INVENTORY) site.yml
	bash lab/demo-check $(DEMO_HOST)

converge: venv collection
	ansible-playbook -i $(DEMO_INVENTORY) site.yml

lab-exec:
	@if [ -z "$$LAB_CMD" ]; then echo "usage: make lab-exec CMD='command'" >&2; exit 2; fi
	@$(LABCTL) exec $(DEMO_HOST) -- /bin/sh -c "$$LAB_CMD" || { rc=$$?; echo "lab-exec: command exited with status $$rc" >&2; exit $$rc; }

lab-down:
	$(LABCTL) down --all

lint: venv collection
	yamllint -s .
	ruff check .
	ansible-lint --profile production
	antsibull-changelog lint

unit: venv
	pytest -q tests/unit || { rc=$$?; if [ $$rc -eq 5 ]; then echo "no unit tests collected"; else exit $$rc; fi; }

molecule: deps venv collection
	molecule test --all

# One scenario (make molecule-default): what make test runs, one stage each.
MOLECULE_SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
molecule-%: deps venv collection
	molecule test -s $*

$(COMPAT_STAMP): requirements.txt meta/runtime.yml | $(STAMP)
	test -n "$(COMPAT_CORE)"
	test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check "ansible-core~=$(COMPAT_CORE).0" \
	    $$(grep -E '^(pytest|hypothesis|PyYAML)==' requirements.txt)
	touch $@

# The unit tests of the plugins and a converge of the demo lab host with the lowest
# ansible-core claimed (lab/compat-check).
compat: deps venv collection $(COMPAT_STAMP)
	bash lab/compat-check $(COMPAT_VENV)

# Each stage in turn, and the time each took at the end (tools/run-stages).
test:
	tools/run-stages lint unit $(addprefix molecule-,$(MOLECULE_SCENARIOS)) compat

# Only the standard library: no venv needed. The unit tests build and run it themselves.
userpod:
	$(PYTHON) tools/build_userpod.py --output $(USERPOD_PYZ)

clean:
	rm -rf .collections .pytest_cache .ruff_cache .hypothesis build
