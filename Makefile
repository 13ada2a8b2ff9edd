# handbuilt.containers -- `make demo` and `make test` work on a fresh Debian 12 host as root.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The newest Python that ansible-core supports on the controller (3.13 > 3.12 > system).
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3 \
	$(HOME)/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12) /usr/bin/python3)
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/handbuilt/containers
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# Debian packages the collection's roles and tests use on this host.
APT_PACKAGES := iproute2 python3 python3-venv python3-pyroute2 busybox-static nftables iptables \
	util-linux procps psmisc iputils-ping kmod tini curl shellcheck \
	debootstrap gpgv xz-utils debian-archive-keyring
APT_PACKAGES_VM := qemu-system-x86 qemu-utils e2fsprogs openssh-client

MODULES := $(basename $(notdir $(wildcard plugins/modules/*.py)))

.PHONY: help setup demo demo-clean test lint sanity doc-check unit integration integration-oldest debian-mirror vm-test docs bench clean

help:
	@echo "make demo        build the demo containers on this host (then: make demo-clean)"
	@echo "make test        every test: lint, ansible-test sanity, ansible-doc, unit, sandboxed kernel tests, Molecule in qemu VMs"
	@echo "make unit | integration | integration-oldest | lint | sanity | vm-test | bench | docs"

.stamp-apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@touch $@

$(BIN)/.stamp: requirements.txt requirements-test.txt | .stamp-apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-test.txt
	@touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

setup: .stamp-apt $(BIN)/.stamp $(COLLECTION_LINK)

demo: setup
	$(BIN)/ansible-playbook playbooks/build_container.yml
	@$(BIN)/ansible-playbook playbooks/demo_show.yml

demo-clean: setup
	$(BIN)/ansible-playbook playbooks/teardown.yml

lint: setup
	$(BIN)/ansible-lint --profile production --offline
	$(BIN)/python -m compileall -q plugins tests

# ansible-test sanity (validate-modules, pylint, pep8, yamllint, import, shebang, shellcheck...) on a
# copy of the tree laid out as ansible_collections/handbuilt/containers; ignores with reasons in
# tests/sanity/ignore-<ansible-core version>.txt. Its per-test venvs are cached in ~/.ansible/test.
sanity: setup
	tests/tools/sanity.sh

doc-check: setup
	@for m in $(MODULES); do \
	  $(BIN)/ansible-doc handbuilt.containers.$$m >/dev/null || { echo "ansible-doc failed: $$m"; exit 1; }; \
	done; echo "ansible-doc: $(words $(MODULES)) modules OK"

docs: setup
	$(BIN)/python tests/tools/gen_module_docs.py > docs/modules.md

unit: setup
	$(BIN)/python -m pytest -q tests/unit

# A partial Debian mirror (bookworm minbase, ~40 MB) for the debootstrap image test, fetched
# from deb.debian.org OUTSIDE the sandbox and checked against Debian's signatures; re-used
# (0.4 s) while complete. Cache: $${HANDBUILT_MIRROR_CACHE:-~/.cache/handbuilt-mirror}.
debian-mirror: setup
	tests/tools/debian-mirror.sh bookworm >/dev/null

# The integration tests re-run themselves in a private network+mount namespace
# (tests/sandbox.sh): this host's own network is never touched.
integration: setup debian-mirror
	tests/sandbox.sh $(BIN)/python -m pytest -q tests/integration $(PYTEST_ARGS)

# The same tests on the oldest ansible-core meta/runtime.yml claims (requirements-oldest.txt).
OLDEST := .venv-oldest
$(OLDEST)/.stamp: requirements-oldest.txt | .stamp-apt
	test -x $(OLDEST)/bin/python || /usr/bin/python3 -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q -r requirements-oldest.txt
	@touch $@

integration-oldest: setup debian-mirror $(OLDEST)/.stamp
	tests/sandbox.sh $(OLDEST)/bin/python -m pytest -q tests/integration $(PYTEST_ARGS)

# Molecule in qemu VMs (docs/vm-testing.md): scenarios default (one VM) and fleet (two VMs
# joined by VXLAN). The guest image is built once and cached (~/.cache/handbuilt-vm).
vm-test: setup
	EXTRA_APT="$(APT_PACKAGES_VM)" $(MAKE) --no-print-directory -B .stamp-apt
	MOLECULE=$(CURDIR)/$(BIN)/molecule tests/vm/run-molecule.sh default fleet

test: setup lint sanity doc-check unit integration integration-oldest vm-test
	@echo "make test: all passed"

bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OLDEST) .collections .stamp-apt
