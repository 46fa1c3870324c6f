"""CLI commands, one module each: ``register(subparsers)`` adds the command's parser and sets
``run`` (a function of the parsed args returning the exit status). Heavy imports stay inside
``run`` so that ``tunelab --help`` and the listings start fast."""
