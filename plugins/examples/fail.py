"""Fail: exits with the given code after printing the given message to stderr."""

import json
import sys

inputs = json.loads(sys.argv[-1])
print("starting, and about to fail")
print(inputs.get("message", "something went wrong"), file=sys.stderr)
sys.exit(inputs.get("code", 1))
