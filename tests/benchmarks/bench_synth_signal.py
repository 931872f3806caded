"""Proxy check of the synthetic cohort's image signal: 5-fold CV AUC of quick classifiers on
simple bbox-crop features, as image_signal grows. Usage: python bench_synth_signal.py [n] [seed]"""
import sys
import time

import numpy as np
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from liver_mm.synth.clinical import synth_clinical
from liver_mm.synth.images import render_frame

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1080
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
signals = [float(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
df = synth_clinical(n, seed)
y = (df["label"] == "malignant").to_numpy().astype(int)
yy, xx = np.mgrid[0:32, 0:32]
ring = np.hypot(yy - 15.5, xx - 15.5) / 16.0
rings = [(ring >= a) & (ring < b) for a, b in [(0, .3), (.3, .6), (.6, .85), (.85, 1.0), (1.0, 2)]]


def features(px, box):
    x0, y0, x1, y1 = box
    c = np.asarray(Image.fromarray(px[y0:y1, x0:x1]).resize((32, 32), Image.BILINEAR), dtype=float)
    hist = np.histogram(c, bins=16, range=(0, 256))[0] / c.size
    prof = [c[m].mean() for m in rings]
    gy, gx = np.gradient(c)
    return np.r_[c.mean(), c.std(), hist, prof, np.subtract(prof[:-1], prof[1:]), np.hypot(gx, gy).mean()]


cv = StratifiedKFold(5, shuffle=True, random_state=0)
for s in signals:
    t = time.time()
    X = np.array([features(*(lambda f: (f.pixels, f.bbox))(render_frame(st, np.random.default_rng([seed, k]), s)))
                  for k, st in enumerate(df["subtype"])])
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    hgb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    aucs = [roc_auc_score(y, cross_val_predict(m, X, y, cv=cv, method="predict_proba")[:, 1]) for m in (lr, hgb)]
    print(f"image_signal={s:.2f}  AUC logreg={aucs[0]:.3f}  hgb={aucs[1]:.3f}  ({time.time() - t:.1f}s)", flush=True)
