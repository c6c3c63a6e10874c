"""``from visiontune.imports import *`` gives what the notes' part 2 cells use, and those cells run as written."""
import subprocess
import sys
import textwrap

from pathlib import Path

import visiontune.imports as vi

ROOT = Path(__file__).resolve().parents[1]


def test_star_import_names():
    ns: dict = {}
    exec("from visiontune.imports import *", ns)
    for name in ("np", "pd", "plt", "PIL", "os", "metrics", "ImageClassifierData", "ConvLearner", "tfms_from_model",
                 "transforms_side_on", "transforms_top_down", "get_cv_idxs", "accuracy", "plots", "resnet34",
                 "plot_confusion_matrix", "ClassificationInterpretation"):
        assert name in ns, name
    assert ns["np"].__name__ == "numpy" and ns["pd"].__name__ == "pandas"
    assert ns["plt"].__name__ == "matplotlib.pyplot" and ns["metrics"].__name__ == "sklearn.metrics"
    assert ns["PIL"].Image.open is __import__("PIL.Image").Image.open
    assert set(vi.__all__) <= set(ns)


def test_part_two_cells_run_as_written(tmp_path):
    """label_df, image sizes, histograms and log_loss, from the notes, on a small generated data set."""
    code = textwrap.dedent(f"""
        import numpy as onp
        from PIL import Image as _Image
        PATH = {str(tmp_path)!r} + "/"
        import os as _os
        _os.makedirs(PATH + "train")
        rng = onp.random.default_rng(0)
        with open(PATH + "labels.csv", "w") as f:
            f.write("id,breed\\n")
            for i in range(12):
                _Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=onp.uint8)).save(PATH + f"train/im{{i}}.jpg")
                f.write(f"im{{i}},{{'pug' if i % 2 else 'dingo'}}\\n")

        from visiontune.imports import *
        label_csv = f'{{PATH}}labels.csv'
        n = len(list(open(label_csv)))-1
        val_idxs = get_cv_idxs(n)
        label_df = pd.read_csv(label_csv)
        counts = label_df.pivot_table(index='breed', aggfunc=len).sort_values('id', ascending=False)[:10]
        size_d = {{k: PIL.Image.open(PATH+'train/'+k+'.jpg').size for k in label_df.id}}
        row_sz, col_sz = list(zip(*size_d.values()))
        row_sz = np.array(row_sz); col_sz=np.array(col_sz)
        plt.hist(row_sz)
        plt.hist(col_sz[col_sz<1000])
        y = np.array([0, 1, 1, 0])
        probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
        print(n, val_idxs.tolist(), counts.loc['pug', 'id'], row_sz.tolist()[:2], col_sz.tolist()[:2],
              accuracy(np.log(probs), y), round(metrics.log_loss(y, probs), 4))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["12", "[4,", "7]", "6", "[30,", "30]", "[20,", "21]", "1.0", "0.299"]
