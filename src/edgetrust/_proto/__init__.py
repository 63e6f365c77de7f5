"""Generated gRPC/protobuf stubs (scripts/gen_proto.sh). Do not edit; import only from here."""
