"""Datasets and readers for the real on-disk formats (KITTI raw, KITTI road, Cityscapes)."""
