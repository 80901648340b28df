"""`aia`, the command line: it stands above model, exporters, service and bench and
dispatches to one of them; nothing below imports it."""
