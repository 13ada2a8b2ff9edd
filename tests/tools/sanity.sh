#!/usr/bin/env bash
# ansible-test sanity: the checks every Ansible collection is held to (validate-modules - the
# documentation against the argument specs -, pylint, pep8, yamllint, import, shebang, ...).
# ansible-test wants the collection at .../ansible_collections/handbuilt/containers and resolves
# the .collections symlink back to this clone, so it runs on a copy of the tree (the files git
# tracks and the untracked ones it does not ignore) in a temp dir.
# Usage: tests/tools/sanity.sh [ansible-test sanity options, e.g. --test validate-modules]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$repo/.venv}
python=$venv/bin/python
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test builds a venv per test and bootstraps pip in it with a get-pip script from
# ci-files.testing.ansible.com, which this network may not reach; then it uses a stand-in that
# does the same job from the interpreter's ensurepip and PyPI (pip pinned by ansible-test).
pip_version=$("$python" -c '
from ansible_test._internal.python_requirements import get_venv_packages
class Python: version = "'"$version"'"
print(get_venv_packages(Python())["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  if ! curl -fsS --max-time 20 -o "$get_pip.download" \
      "https://ci-files.testing.ansible.com/ansible-test/get-pip-$pip_version.py" 2>/dev/null; then
    cat > "$get_pip.download" <<'EOF'
# Stand-in for ansible-test's get-pip script (written by handbuilt.containers' tests/tools/sanity.sh):
# pip into this fresh venv from ensurepip, then `pip install` the pinned packages it is given.
import ensurepip
import runpy
import sys

ensurepip.bootstrap()
sys.argv = ["pip", "install"] + [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
EOF
  fi
  mv "$get_pip.download" "$get_pip"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy=$work/ansible_collections/handbuilt/containers
mkdir -p "$copy"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$copy"
cd "$copy"
"$venv/bin/ansible-test" sanity --python "$version" --color no "$@"
