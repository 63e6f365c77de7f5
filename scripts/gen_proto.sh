#!/usr/bin/env bash
# Generate the Python protobuf / gRPC stubs of every proto/edgetrust/v1/*.proto into the private
# package src/edgetrust/_proto/ (messages, .pyi type stubs, gRPC service stubs).
#
#   bash scripts/gen_proto.sh            # regenerate (the generated files are committed)
#   bash scripts/gen_proto.sh --check    # exit 1 if the committed files are out of date
#
# Layout: flat. proto/edgetrust/v1/foo.proto gives edgetrust._proto.foo_pb2 / foo_pb2_grpc /
# foo_pb2.pyi; protoc's absolute imports ("from edgetrust.v1 import foo_pb2") are rewritten to
# "from edgetrust._proto import foo_pb2", so edgetrust._proto is a proper package and nothing needs
# sys.path tricks. Descriptor names stay "edgetrust/v1/foo.proto", so reflection shows the real
# proto paths. Each proto file is generated exactly once (two copies of one descriptor in the same
# process would collide in the default descriptor pool). Needs grpcio-tools (the `dev` extra).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=src/edgetrust/_proto

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
protos=(proto/edgetrust/v1/*.proto)
if [ ${#protos[@]} -eq 0 ]; then
  echo "error: no .proto files under proto/edgetrust/v1" >&2
  exit 2
fi
"$PY" -m grpc_tools.protoc -I proto \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "${protos[@]}"

mkdir -p "$tmp/flat"
for f in "$tmp"/edgetrust/v1/*_pb2*; do
  sed -E \
    -e 's/^from edgetrust\.v1 import /from edgetrust._proto import /' \
    -e 's/^import edgetrust\.v1\.([a-z_0-9]+_pb2)/import edgetrust._proto.\1/' \
    "$f" >"$tmp/flat/$(basename "$f")"
done
cat >"$tmp/flat/__init__.py" <<'PYEOF'
"""Generated gRPC/protobuf stubs (scripts/gen_proto.sh). Do not edit; import only from here."""
PYEOF

if [ "$check" = 1 ]; then
  stale=0
  for f in "$tmp"/flat/*; do
    if ! cmp -s "$f" "$OUT/$(basename "$f")"; then
      echo "out of date: $OUT/$(basename "$f")" >&2
      stale=1
    fi
  done
  for f in "$OUT"/*_pb2*; do
    if [ ! -e "$tmp/flat/$(basename "$f")" ]; then
      echo "stale (no .proto): $f" >&2
      stale=1
    fi
  done
  if [ "$stale" = 1 ]; then
    echo "error: run bash scripts/gen_proto.sh" >&2
    exit 1
  fi
  echo "generated stubs are up to date"
  exit 0
fi

mkdir -p "$OUT"
rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi "$OUT"/*_pb2_grpc.py
cp "$tmp"/flat/* "$OUT"/
echo "generated: $(cd "$OUT" && ls -- *_pb2*.py* | tr '\n' ' ')"
