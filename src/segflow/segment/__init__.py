"""Classical and unsupervised segmenters: k-means, watershed, SLIC superpixels, GrabCut."""

from segflow.segment.grabcut import grabcut
from segflow.segment.kmeans import KMeansResult, kmeans
from segflow.segment.superpixels import slic
from segflow.segment.watershed import watershed

__all__ = ["KMeansResult", "grabcut", "kmeans", "slic", "watershed"]
