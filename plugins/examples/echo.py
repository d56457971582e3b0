"""Echo: prints its inputs back as results, after an optional pause."""

import json
import sys
import time

inputs = json.loads(sys.argv[-1])
pause = int(inputs.pop("pause", 0) or 0)
for second in range(pause):
    print(json.dumps({"progress": int(100 * second / pause), "message": f"waited {second}s"}), flush=True)
    time.sleep(1)
if "arrayInput" in inputs and not isinstance(inputs["arrayInput"], list):
    inputs["arrayInput"] = [inputs["arrayInput"]]
print(f"echoing {sorted(inputs)}", file=sys.stderr)
print(json.dumps({"plugin_results": inputs}))
