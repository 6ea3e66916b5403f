"""The `edgefleet` command line: thin, it parses, calls a service, renders, and maps errors."""
