"""gantricks' built-in plugins, registered through the "gantricks" entry-point group.

Each module here is an ordinary plugin: it imports only gantricks' public API, exactly
as a third-party plugin would.
"""
