"""Evaluations of frozen representations: the weighted k-NN probe and a raw-pixel baseline."""
from .knn import FeatureExtractor, build_extractor, knn_accuracy, knn_classify, run_knn_probe
from .pixels import RawPixels

__all__ = ['knn_classify', 'knn_accuracy', 'build_extractor', 'FeatureExtractor',
           'run_knn_probe', 'RawPixels']
