"""The ``genq`` command line: it parses arguments and calls the rooms."""
