#!/usr/bin/env bash
# Regenerate the gRPC/protobuf stubs of proto/edgetrust/v1/*.proto into src/edgetrust/_proto/.
# Usage: bash scripts/gen_proto.sh      (the generated files are committed; rerun after editing a .proto)
#
# The stubs are flattened into one private package: proto/edgetrust/v1/foo.proto gives
# edgetrust._proto.foo_pb2 / foo_pb2_grpc / foo_pb2.pyi, and protoc's absolute imports
# ("from edgetrust.v1 import foo_pb2") are rewritten to "from edgetrust._proto import foo_pb2".
# The descriptor names stay "edgetrust/v1/foo.proto", so reflection shows the real proto paths.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=src/edgetrust/_proto
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
protos=(proto/edgetrust/v1/*.proto)
if [ ${#protos[@]} -eq 0 ]; then
  echo "error: no .proto files under proto/edgetrust/v1" >&2
  exit 2
fi
"$PY" -m grpc_tools.protoc -I proto --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${protos[@]}"

mkdir -p "$OUT"
rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi "$OUT"/*_pb2_grpc.py
for f in "$tmp"/edgetrust/v1/*; do
  sed -e 's/^from edgetrust\.v1 import /from edgetrust._proto import /' "$f" > "$OUT/$(basename "$f")"
done
cat > "$OUT/__init__.py" <<'PYEOF'
"""Generated gRPC/protobuf stubs (scripts/gen_proto.sh). Do not edit; import only from here."""
PYEOF
echo "generated: $(cd "$OUT" && ls -- *_pb2*.py* | tr '\n' ' ')"
