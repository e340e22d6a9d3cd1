"""Search spaces as data, one small module per space, looked up by `--space NAME`."""
