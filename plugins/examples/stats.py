"""Statistics: count, sum, min, max and mean of the `numbers` input."""

import json
import sys

inputs = json.loads(sys.argv[-1])
numbers = inputs["numbers"]
if not isinstance(numbers, list):
    numbers = [numbers]
precision = inputs.get("precision", 3)
total = sum(numbers)
print(f"{len(numbers)} number(s)")
results = {
    "count": len(numbers),
    "sum": total,
    "min": min(numbers),
    "max": max(numbers),
    "mean": round(total / len(numbers), precision),
}
print(json.dumps({"plugin_results": results}))
