#!/usr/bin/env bash
# Regenerate the Python code for grpc_service.proto (needs grpcio-tools; run from this directory).
set -euo pipefail
cd "$(dirname "$0")"
python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. grpc_service.proto
# Generated code imports its sibling as a top-level module; make it a package-relative import.
sed -i 's/^import grpc_service_pb2 as/from edgefleet.serving.proto import grpc_service_pb2 as/' grpc_service_pb2_grpc.py
# Build the descriptors in a private pool: clients that ship the same `inference` package
# (tritonclient) can then be imported into the same process.
sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' grpc_service_pb2.py
