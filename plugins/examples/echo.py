"""Echo: prints its inputs back as results, after an optional pause."""

import json
import sys
import time


def plain(value):
    """A qualified input ({"value": ...}) counts as its value."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


inputs = {name: plain(value) for name, value in json.loads(sys.argv[-1]).items()}
pause = int(inputs.pop("pause", 0) or 0)
for second in range(pause):
    print(json.dumps({"progress": int(100 * second / pause), "message": f"waited {second}s"}), flush=True)
    time.sleep(1)
if "arrayInput" in inputs:
    values = inputs["arrayInput"]
    inputs["arrayInput"] = [plain(v) for v in (values if isinstance(values, list) else [values])]
print(f"echoing {sorted(inputs)}", file=sys.stderr)
print(json.dumps({"plugin_results": inputs}))
