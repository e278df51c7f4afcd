"""Lidar-camera fusion: labelling points from masks, clustering, bird's-eye-view pictures."""
