"""The command line: arguments, the commands, the --loop mode, logging."""
