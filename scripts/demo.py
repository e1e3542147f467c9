"""The main job end to end on a small bundled dataset: train k-means, serve it, predict.

Uses scikit-learn's digits (ships with scikit-learn, no download) through the real
``algobox kmeans train`` and ``algobox kmeans serve``, exactly as the image would run them.
Run with ``make demo``; the job folder is left in .work/demo for inspection.
"""

import io
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from emulator import Job, serve  # noqa: E402
from sdk import RecordDeserializer, RecordSerializer  # noqa: E402


def csv_bytes(array):
    buffer = io.StringIO()
    np.savetxt(buffer, array, delimiter=",", fmt="%g")
    return buffer.getvalue().encode()


def main():
    root = REPO / ".work" / "demo"
    shutil.rmtree(root, ignore_errors=True)
    digits = load_digits()
    train, test = train_test_split(digits.data.astype(np.float32), test_size=0.25, random_state=0)
    job = Job(root)
    job.add_file("train", "train.csv", csv_bytes(train))
    job.add_file("test", "test.csv", csv_bytes(test))
    job.write_config({"k": 10, "feature_dim": 64, "eval_metrics": '["msd","ssd"]'},
                     {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}})
    print(f"== algobox kmeans train  (ALGOBOX_ML_ROOT={root})")
    result = job.train("kmeans")
    print(result.output)
    if result.returncode != 0:
        print(result.failure)
        return 1
    msd = re.search(r"#quality_metric: host=\S+, test msd <loss>=(\S+)", result.output).group(1)
    print(f"== model files: {result.model_files}; test msd = {msd}")

    print("== algobox kmeans serve")
    with serve("kmeans", root) as server:
        sample = test[:3]
        csv_body = "\n".join(",".join(f"{v:g}" for v in row) for row in sample)
        print("text/csv ->", server.post(csv_body, "text/csv").json())
        json_body = json.dumps({"instances": [{"features": row.tolist()} for row in sample]})
        print("application/json -> jsonlines:\n" +
              server.post(json_body, "application/json", accept="application/jsonlines").text.rstrip())
        response = server.post(RecordSerializer().serialize(sample), "application/x-recordio-protobuf",
                               accept="application/x-recordio-protobuf")
        records = RecordDeserializer().deserialize(io.BytesIO(response.content), response.headers["Content-Type"])
        print("application/x-recordio-protobuf ->",
              [(r.label["closest_cluster"].float32_tensor.values[0],
                round(r.label["distance_to_cluster"].float32_tensor.values[0], 3)) for r in records])
        seconds = server.stop()
        print(f"== server stopped by SIGTERM in {seconds:.1f} s")
    print(f"== test msd {msd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
