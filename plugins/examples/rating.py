"""Rating table: discharge by depth of a rectangular channel (Manning's equation, SI units).

Writes rating.csv to the job's results location and returns its name: the server
serves that file as the output `table`.
"""

import csv
import json
import os
import sys

MAX_ROWS = 100_000


def discharge(width, slope, roughness, depth):
    """Q = (1/n) A R^(2/3) S^(1/2), with A = b·y and R = A / (b + 2y)."""
    area = width * depth
    radius = area / (width + 2 * depth)
    return area, (area * radius ** (2 / 3) * slope**0.5) / roughness


inputs = json.loads(sys.argv[-1])
width = inputs.get("width", 10)
slope = inputs.get("slope", 0.001)
roughness = inputs.get("roughness", 0.035)
max_depth = inputs.get("maxDepth", 5)
step = inputs.get("step", 0.1)
rows = int(max_depth / step + 1e-9) + 1
if rows > MAX_ROWS:
    print(f"{rows} rows asked for; at most {MAX_ROWS}: take a larger step", file=sys.stderr)
    sys.exit(2)
folder = os.environ.get("PROCESS_API_RESULTS_DIR")
if not folder:
    print("no results directory: run it on the subprocess or docker host", file=sys.stderr)
    sys.exit(3)

with open(os.path.join(folder, "rating.csv"), "w", newline="") as file:
    writer = csv.writer(file)
    writer.writerow(["depth_m", "area_m2", "velocity_ms", "discharge_m3s"])
    for row in range(rows):
        depth = round(row * step, 9)
        area, flow = discharge(width, slope, roughness, depth)
        velocity = flow / area if area else 0.0
        writer.writerow([f"{depth:g}", f"{area:.4f}", f"{velocity:.4f}", f"{flow:.4f}"])
        if row % 1000 == 0:
            print(json.dumps({"progress": int(100 * row / rows), "message": f"depth {depth:g}"}))
print(f"{rows} rows written to rating.csv")
print(json.dumps({"plugin_results": {"table": "rating.csv", "rows": rows}}))
