#!/bin/sh
# llama-cpp-python 0.3.36 built with our llama.cpp patches (patches/llama.cpp/*.patch, applied in
# name order to its vendored llama.cpp), installed into the venv given. The wheel is cached under
# ~/.cache/inspector/llama-cpp-python/<version>+inspector.<hash of the patches>, so a second
# bootstrap (or CI on a clean clone of the same patches) does not build again. Its version carries
# the hash, which still satisfies the pyproject's ==0.3.36 and tells `inspector doctor` which build
# runs. With no patch in the folder this does nothing: pip builds the plain release as before.
set -eu
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
version=0.3.36
ls "$here"/llama.cpp/*.patch >/dev/null 2>&1 || exit 0
hash=$(cat "$here"/llama.cpp/*.patch | sha256sum | cut -c1-12)
local_version="$version+inspector.$hash"
have=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)
[ "$have" = "$local_version" ] && exit 0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/inspector/llama-cpp-python/$local_version"
if ! ls "$cache"/*.whl >/dev/null 2>&1; then
  echo "bootstrap: building llama-cpp-python $local_version with $(ls "$here"/llama.cpp/*.patch | wc -l) llama.cpp patch(es) (several minutes on 2 cores, once)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  src="$work/llama_cpp_python-$version"
  for p in "$here"/llama.cpp/*.patch; do
    patch -s -p1 --forward -d "$src/vendor/llama.cpp" < "$p" || { echo "bootstrap: $p does not apply to llama-cpp-python $version" >&2; exit 1; }
  done
  sed -i "s/^__version__ = \"$version\"/__version__ = \"$local_version\"/" "$src/llama_cpp/__init__.py"
  grep -q "__version__ = \"$local_version\"" "$src/llama_cpp/__init__.py"
  "$venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$src"
  mkdir -p "$cache"
  mv "$work"/dist/*.whl "$cache/"
fi
"$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$cache"/*.whl
