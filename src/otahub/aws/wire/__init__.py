"""AWS rest-json on the wire, driven by botocore's own service models: SigV4,
routing, parsing, validation, serialization and errors. Handlers only see dicts."""
