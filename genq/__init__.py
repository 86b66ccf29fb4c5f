"""The command line and the demo: parses arguments and calls the rooms.
May import: every room."""
