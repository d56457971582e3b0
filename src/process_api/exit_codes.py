"""What the `process-api` commands exit with, so that scripts can tell failures apart."""

EXIT_FAILED = 1
EXIT_INVALID_FILES = 2
EXIT_BAD_SETTINGS = 3
EXIT_NO_DATABASE = 4
