"""
Every transform on the coins
============================

Each coin of the embedded photograph gets its own random parameters.
"""

import matplotlib.pyplot as plt

from augpatch.demo import load_asset

image, boxes = load_asset()
plt.imshow(image[0], cmap="gray")
