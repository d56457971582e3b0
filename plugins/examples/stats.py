"""Statistics: count, sum, min, max and mean of the `numbers` input."""

import json
import math
import sys


def plain(value):
    """A qualified input ({"value": ...}) counts as its value."""
    return value["value"] if isinstance(value, dict) and "value" in value else value


inputs = json.loads(sys.argv[-1])
numbers = plain(inputs["numbers"])
numbers = [plain(n) for n in (numbers if isinstance(numbers, list) else [numbers])]
precision = plain(inputs.get("precision", 3))
total = sum(numbers)
print(f"{len(numbers)} number(s)")
if not math.isfinite(total):
    print("the sum is too large to be written in JSON", file=sys.stderr)
    sys.exit(2)
results = {
    "count": len(numbers),
    "sum": total,
    "min": min(numbers),
    "max": max(numbers),
    "mean": round(total / len(numbers), precision),
}
print(json.dumps({"plugin_results": results}))
